// Reads [[bodyIndex, accessoryIndex, headIndex, glassesIndex, backgroundIndex], ...] as JSON on stdin
// and writes one SVG per composition (a JSON list of strings) from @nouns/sdk's buildSVG.
const { buildSVG } = require("@nouns/sdk");
const data = require("@nouns/assets/dist/image-data.json");

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const { bodies, accessories, heads, glasses } = data.images;
  const out = JSON.parse(input).map(([b, a, h, g, bg]) =>
    buildSVG([bodies[b], accessories[a], heads[h], glasses[g]], data.palette, data.bgcolors[bg]),
  );
  process.stdout.write(JSON.stringify(out));
});
