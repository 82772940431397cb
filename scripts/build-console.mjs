// Builds the console's static assets into dist/ (npm run build): its own CSS and script, and the
// two browser libraries it uses (htmx and its SSE extension) copied from node_modules, so the
// console works offline and in an air-gapped cluster: no CDN, nothing fetched at run time.
import { copyFileSync, mkdirSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { stdout } from "node:process";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const from = join(root, "src/transport/console/static");
const to = join(root, "dist/transport/console/static");
const require = createRequire(import.meta.url);

mkdirSync(join(to, "vendor"), { recursive: true });
for (const name of readdirSync(from)) copyFileSync(join(from, name), join(to, name));
copyFileSync(require.resolve("htmx.org/dist/htmx.min.js"), join(to, "vendor/htmx.min.js"));
copyFileSync(require.resolve("htmx-ext-sse/dist/sse.min.js"), join(to, "vendor/sse.js"));
stdout.write(`build-console: static assets in ${to}\n`);
