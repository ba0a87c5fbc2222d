// Parses Mermaid files with the real Mermaid parser, the one browsers run.
//
//     npm ci --prefix tests/mermaid --no-audit --no-fund   # once
//     node tests/mermaid/check.mjs FILE...
//
// Prints `ok: FILE (DIAGRAM TYPE)` for each file that parses, and `FAIL: FILE`
// followed by the parser's error, indented, for each that does not. Exits 0 when
// every file parsed, 1 when some did not, 2 when it cannot check at all (no
// file given, a file unreadable, jsdom or mermaid not loadable).
// examples/tests/graphs.rs runs it on every Mermaid text sagaflow draws.
//
// Mermaid needs a DOM even to parse (DOMPurify is set up when it is imported),
// so jsdom provides one; nothing is rendered.

import fs from 'node:fs';

const files = process.argv.slice(2);
if (files.length === 0) {
    console.error('usage: node check.mjs FILE...');
    process.exit(2);
}

let mermaid;
try {
    const { JSDOM } = await import('jsdom');
    const dom = new JSDOM('<!doctype html><html><body></body></html>');
    globalThis.window = dom.window;
    globalThis.document = dom.window.document;
    for (const name of ['Element', 'HTMLElement', 'Node', 'DOMParser', 'navigator']) {
        try {
            globalThis[name] ??= dom.window[name];
        } catch {
            // Node's own `navigator` is a getter without a setter: keep it.
        }
    }
    // Imported only now: DOMPurify looks for `window` as mermaid loads.
    mermaid = (await import('mermaid')).default;
    mermaid.initialize({ startOnLoad: false, logLevel: 'fatal' });
} catch (e) {
    console.error('cannot load jsdom and mermaid; install them with '
        + `\`npm ci --no-audit --no-fund\` in ${import.meta.dirname}:\n${e?.stack ?? e}`);
    process.exit(2);
}

let failed = 0;
for (const file of files) {
    let text;
    try {
        text = fs.readFileSync(file, 'utf8');
    } catch (e) {
        console.error(`cannot read ${file}: ${e.message}`);
        process.exit(2);
    }
    try {
        // Throws on a syntax error; returns false only with `suppressErrors`.
        const result = await mermaid.parse(text);
        console.log(`ok: ${file} (${result.diagramType})`);
    } catch (e) {
        failed++;
        const message = String(e?.message ?? e).trimEnd();
        console.log(`FAIL: ${file}`);
        console.log(message.replace(/^/gm, '    '));
    }
}

if (failed > 0) {
    console.log(`${failed} of ${files.length} file(s) did not parse`);
    process.exit(1);
}
