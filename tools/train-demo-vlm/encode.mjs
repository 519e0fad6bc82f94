#!/usr/bin/env node
// Token ids of every conversation of a world dataset, made by the engine's own tokenizer and chat-template code
// exactly as Chat feeds them: turn 1 is buildPrompt(); each later turn is buildTurnDelta() after the previous
// prompt and the answer's ids (the tokens the engine would have generated; the <|im_end|> that stopped them is
// not fed, the template's own `<|im_end|>\n` opens the next delta). The last turn gets a closing <|im_end|> so
// every answer span ends on one.
//
//   node tools/train-demo-vlm/encode.mjs CONVERSATIONS.jsonl TOKENIZER_DIR IMAGE_TOKENS OUT.jsonl
//
// Each output line: {"id", "ids": [...], "spans": [[start, end], ...]} where ids[start:end] are a turn's answer
// ids followed by <|im_end|> (the supervised targets), and "prompt_ends" the index where each turn's prompt ends.
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

// SPARSEVILA_ROOT: a checkout whose dist/ to use instead of this one's (a frozen build while this tree changes).
const root = process.env.SPARSEVILA_ROOT ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { loadTextProcessor, buildPrompt, buildTurnDelta } = await import(path.join(root, 'dist/src/index.js'));

const [conversationsPath, tokenizerDir, imageTokensArg, outPath] = process.argv.slice(2);
if (!conversationsPath || !tokenizerDir || !imageTokensArg || !outPath) {
  console.error('usage: encode.mjs CONVERSATIONS.jsonl TOKENIZER_DIR IMAGE_TOKENS OUT.jsonl');
  process.exit(2);
}
const imageTokenCount = Number(imageTokensArg);
const tp = await loadTextProcessor(tokenizerDir);
const imEnd = tp.tokenToId('<|im_end|>');
if (imEnd === undefined) throw new Error(`${tokenizerDir}/tokenizer.json has no <|im_end|> token`);

const out = fs.createWriteStream(outPath);
const lines = readline.createInterface({ input: fs.createReadStream(conversationsPath) });
let n = 0;
for await (const line of lines) {
  if (!line.trim()) continue;
  const conv = JSON.parse(line);
  const images = conv.media.paths.length;
  const messages = [];
  const ids = [];
  const spans = [];
  const promptEnds = [];
  let previous = null;
  for (const [i, turn] of conv.turns.entries()) {
    const content = [...(i === 0 ? Array.from({ length: images }, () => ({ type: 'image' })) : []), { type: 'text', text: turn.question }];
    messages.push({ role: 'user', content });
    const options = { imageCount: i === 0 ? images : 0, imageTokenCount };
    const prompt = previous === null ? buildPrompt(tp, messages, options) : buildTurnDelta(tp, messages, previous, options);
    ids.push(...prompt.ids);
    promptEnds.push(ids.length);
    const answerIds = tp.encode(turn.answer);
    if (tp.decode(answerIds, { skipSpecial: true }) !== turn.answer) throw new Error(`${conv.id}: answer '${turn.answer}' does not round-trip`);
    ids.push(...answerIds);
    spans.push([promptEnds[i], ids.length + 1]);
    messages.push({ role: 'assistant', content: turn.answer });
    previous = { prompt, generatedIds: answerIds };
  }
  ids.push(imEnd);
  for (const [, end] of spans) if (ids[end - 1] !== imEnd) throw new Error(`${conv.id}: an answer is not followed by <|im_end|>`);
  out.write(JSON.stringify({ id: conv.id, ids, spans, prompt_ends: promptEnds }) + '\n');
  n++;
}
await new Promise((resolve) => out.end(resolve));
console.log(`encode: ${n} conversations -> ${outPath}`);
