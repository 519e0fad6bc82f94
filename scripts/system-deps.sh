#!/usr/bin/env bash
# Installs the Debian packages that the browser, notebook, video and GPU tests need, when they are missing:
# chromium (driven by playwright-core), jupyter nbconvert with the Python kernel machinery tslab uses, ffmpeg
# (ffprobe + ffmpeg decode video frames for `--video`), and Mesa's Vulkan drivers from the release's backports
# suite: lavapipe, the software Vulkan adapter onnxruntime-node's WebGPU provider (Dawn) runs on without a GPU.
# Stable bookworm's Mesa 22.3 lacks a Vulkan feature Dawn requires; bookworm-backports has 25.x. When all are
# present it exits at once.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
/usr/bin/python3 -c "import nbconvert, nbclient, ipykernel, jupyter_core" 2>/dev/null || need+=(jupyter-nbconvert python3-nbclient python3-ipykernel)
{ [ -x /usr/bin/ffmpeg ] && [ -x /usr/bin/ffprobe ]; } || need+=(ffmpeg)

# Mesa's Vulkan drivers at version 23 or later (lavapipe with what Dawn needs), else from backports.
mesa=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
mesa_new=0
if [ -n "$mesa" ] && dpkg --compare-versions "$mesa" ge 23; then mesa_new=1; fi

if [ ${#need[@]} -eq 0 ] && [ $mesa_new -eq 1 ]; then exit 0; fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

backports=()
if [ $mesa_new -eq 0 ]; then
  # The backports suite on the machine's own Debian mirror: the URI of the source that carries the release's
  # main suite, in deb822 (*.sources) or one-line (*.list) form. Never a hard-coded host.
  . /etc/os-release
  codename=${VERSION_CODENAME:?/etc/os-release names no VERSION_CODENAME}
  mirror=$(
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] && awk -v suite="$codename" '
        /^URIs:/ { uri = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) found = 1 }
        /^$/ { if (found && uri) { print uri; printed = 1; exit } uri = ""; found = 0 }
        END { if (!printed && found && uri) print uri }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] && awk -v suite="$codename" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $(i) ~ /:\/\//) { if ($(i + 1) == suite) print $i; break } }' "$f"
    done
  )
  mirror=$(echo "$mirror" | head -n 1)
  if [ -z "$mirror" ]; then
    echo "system-deps: no apt source carries '$codename'; add ${codename}-backports by hand to install mesa-vulkan-drivers >= 23 (WebGPU tests)" >&2
  else
    list=/etc/apt/sources.list.d/sparsevila-backports.sources
    if ! grep -qs "${codename}-backports" /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null; then
      echo "enabling ${codename}-backports from $mirror (for mesa-vulkan-drivers)"
      printf 'Types: deb\nURIs: %s\nSuites: %s-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" "$codename" |
        $SUDO tee "$list" >/dev/null
    fi
    backports=(mesa-vulkan-drivers)
  fi
fi

echo "installing Debian packages: ${need[*]} ${backports[*]}"
$SUDO apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null; fi
if [ ${#backports[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -t "${codename}-backports" "${backports[@]}" >/dev/null
fi
