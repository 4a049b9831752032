// Charts for the live quiz view, drawn as SVG in the page: no chart library, no
// network, text only through textContent.

const NS = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

/**
 * Horizontal bars: one per option, labelled A, B, ... (or given labels); the right
 * options (indices in `right`) are marked. Returns an <svg> element.
 */
export function barChart(counts, { labels, right = [], total } = {}) {
  const rowH = 30;
  const width = 320;
  const labelW = 36;
  const max = Math.max(1, total || 0, ...counts);
  const svg = el("svg", { viewBox: `0 0 ${width} ${counts.length * rowH + 4}`, class: "quiz-chart", role: "img" });
  counts.forEach((n, i) => {
    const y = i * rowH + 2;
    const w = Math.round(((width - labelW - 48) * n) / max);
    const label = labels ? labels[i] : String.fromCharCode(65 + i);
    svg.append(el("text", { x: 4, y: y + 20, class: "quiz-chart-label" }, label));
    svg.append(el("rect", { x: labelW, y: y + 4, width: Math.max(w, n ? 2 : 0), height: rowH - 10, rx: 3,
      class: right.includes(i) ? "bar right" : "bar" }));
    svg.append(el("text", { x: labelW + w + 6, y: y + 20, class: "quiz-chart-value" }, n));
  });
  return svg;
}
