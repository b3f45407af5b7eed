// Copies the browser builds of the front-end libraries from node_modules/ (beside this file) into the project's
// static/vendor/, where WhiteNoise serves them. Both folders are git-ignored: the set-up's `npm ci` recreates them
// from package-lock.json.
const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "..", "..");
const files = {
  "uplot/dist/uPlot.iife.min.js": "uPlot.iife.min.js",
  "uplot/dist/uPlot.min.css": "uPlot.min.css",
};
const target = path.join(root, "static", "vendor");
fs.mkdirSync(target, { recursive: true });
for (const [from, to] of Object.entries(files)) {
  fs.copyFileSync(path.join(__dirname, "node_modules", from), path.join(target, to));
}
console.log(`copied ${Object.keys(files).length} files into static/vendor/`);
