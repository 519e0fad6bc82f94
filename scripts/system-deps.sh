#!/usr/bin/env bash
# Installs the Debian packages that the browser, notebook and video tests need, when they are missing:
# chromium (driven by playwright-core), jupyter nbconvert with the Python kernel machinery tslab uses, and
# ffmpeg (ffprobe + ffmpeg decode video frames for `--video`). When all are present it exits at once.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
/usr/bin/python3 -c "import nbconvert, nbclient, ipykernel, jupyter_core" 2>/dev/null || need+=(jupyter-nbconvert python3-nbclient python3-ipykernel)
{ [ -x /usr/bin/ffmpeg ] && [ -x /usr/bin/ffprobe ]; } || need+=(ffmpeg)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
echo "installing Debian packages: ${need[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
