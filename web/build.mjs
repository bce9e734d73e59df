// Builds the web app into web/dist: one ES module bundle (preact, htm, viem,
// lightweight-charts and the app's sources), the page and its stylesheet. `make` runs it.
import { build } from "esbuild";
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "dist");
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "assets"), { recursive: true });
await build({
  entryPoints: [join(here, "src", "main.js")],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: true,
  outfile: join(out, "assets", "app.js"),
  logLevel: "warning",
});
cpSync(join(here, "index.html"), join(out, "index.html"));

