// Builds {{name}}.wasm, the WebAssembly component the manifest points at,
// from app.js and the world in wit/world.wit: `npm run build`.
import { writeFile } from 'node:fs/promises';
import { componentize } from '@bytecodealliance/componentize-js';

const { component } = await componentize({
  sourcePath: 'app.js',
  witPath: 'wit',
  worldName: '{{kind}}',
  // Left out: outgoing HTTP (a plugin reaches the web through the host's
  // http_client tool), and clocks and randomness (Date.now() and
  // Math.random() are then fixed when the component is built; drop
  // 'clocks' or 'random' here for real ones). `stdio` stays, so an
  // uncaught exception's message reaches the caller's `plugin_trap` error.
  disableFeatures: ['random', 'clocks', 'http', 'fetch-event'],
});
await writeFile('{{name}}.wasm', component);
console.log(`built {{name}}.wasm (${(component.length / 1048576).toFixed(1)} MiB)`);
