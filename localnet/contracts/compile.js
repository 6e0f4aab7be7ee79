// Compile the local contracts with solcjs (npm `solc`, pinned): no native solc is installable
// offline. Reads a solc standard-JSON input on stdin, resolves imports from node_modules,
// writes the standard-JSON output on stdout.
const path = require("path");
const fs = require("fs");
const solc = require("solc");

const root = process.argv[2];
const input = fs.readFileSync(0, "utf8");
function findImports(p) {
  for (const base of [path.join(root, "node_modules"), path.join(root, "localnet", "contracts")]) {
    const full = path.join(base, p);
    if (fs.existsSync(full)) return { contents: fs.readFileSync(full, "utf8") };
  }
  return { error: "not found: " + p };
}
process.stdout.write(solc.compile(input, { import: findImports }));
