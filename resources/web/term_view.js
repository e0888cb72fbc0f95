/* TSX-MedTrans term view: attention of one target term to each source token, by layer.
 * Data: <script type="application/json" id="tsx-data"> (built by desktop/attention/page.py).
 * Plain DOM + inline SVG, no libraries, no network. All text goes through textContent. */
(function () {
  'use strict';
  var DATA = JSON.parse(document.getElementById('tsx-data').textContent);
  var SVGNS = 'http://www.w3.org/2000/svg';  // a namespace name, not a request
  var CELL_W = 26, CELL_H = 14, LABEL_W = 46, SHARE_W = 60;
  var state = {query: 'generation', head: -1, scale: 'global'};

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function sv(tag, attrs, text) {
    var e = document.createElementNS(SVGNS, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  // white -> light blue -> dark blue (ColorBrewer "Blues" end points)
  var STOPS = [[247, 251, 255], [107, 174, 214], [8, 48, 107]];
  function color(v) {
    v = Math.max(0, Math.min(1, v || 0));
    var seg = v < 0.5 ? 0 : 1, t = v < 0.5 ? v * 2 : (v - 0.5) * 2;
    var a = STOPS[seg], b = STOPS[seg + 1];
    return 'rgb(' + [0, 1, 2].map(function (i) { return Math.round(a[i] + (b[i] - a[i]) * t); }).join(',') + ')';
  }
  function fmt(x) { return (x === null || x === undefined) ? '–' : Number(x).toFixed(2); }

  function rows(panel, q) {
    var d = panel.queries[q] || panel.queries.generation;
    if (state.head < 0) { return d.per_layer; }
    return d.per_head.map(function (layer) { return layer[state.head]; });
  }

  function heatmap(panel, q, summary) {
    var data = rows(panel, q);
    var nL = data.length, nS = panel.src_tokens.length;
    var top = 70, width = LABEL_W + nS * CELL_W + SHARE_W + 10, height = top + nL * CELL_H + 8;
    var svg = sv('svg', {width: width, height: height, 'class': 'heatmap'});
    var gmax = 1e-9;
    data.forEach(function (r) { r.forEach(function (v) { gmax = Math.max(gmax, v); }); });
    var span = summary.src_units, expected = summary.expected_units || [];
    var band = {};
    (panel.band || []).forEach(function (l) { band[l] = true; });
    panel.src_tokens.forEach(function (tok, j) {
      var x = LABEL_W + j * CELL_W + CELL_W / 2;
      var t = sv('text', {x: x, y: top - 6, transform: 'rotate(-55 ' + x + ' ' + (top - 6) + ')',
                          'class': 'col' + (span.indexOf(j) >= 0 ? ' inspan' : '') +
                                   (expected.indexOf(j) >= 0 ? ' expected' : '')}, tok);
      svg.appendChild(t);
    });
    var share = (panel.queries[q] || panel.queries.generation).source_share;
    data.forEach(function (r, l) {
      var y = top + l * CELL_H;
      svg.appendChild(sv('text', {x: LABEL_W - 4, y: y + CELL_H - 3, 'class': 'row' + (band[l] ? ' band' : '')},
                         (band[l] ? '▸ ' : '') + 'L' + l));
      var rmax = 1e-9;
      r.forEach(function (v) { rmax = Math.max(rmax, v); });
      r.forEach(function (v, j) {
        var rect = sv('rect', {x: LABEL_W + j * CELL_W, y: y, width: CELL_W - 1, height: CELL_H - 1,
                               fill: color(v / (state.scale === 'layer' ? rmax : gmax))});
        rect.appendChild(sv('title', {}, 'layer ' + l + ' · ' + panel.src_tokens[j] + ' · ' + v.toFixed(3)));
        svg.appendChild(rect);
      });
      var sx = LABEL_W + nS * CELL_W + 8, sw = (SHARE_W - 12) * (share[l] || 0);
      var bar = sv('rect', {x: sx, y: y + 2, width: Math.max(sw, 0.5), height: CELL_H - 5, 'class': 'share'});
      bar.appendChild(sv('title', {}, 'layer ' + l + ': ' + Math.round(100 * (share[l] || 0)) +
                                       '% of the term\'s attention on the source (rest: translation so far)'));
      svg.appendChild(bar);
    });
    svg.appendChild(sv('text', {x: LABEL_W + nS * CELL_W + 8, y: top - 6, 'class': 'sharehead'}, 'on source'));
    if (span.length) {  // outline the best-aligned span over all layers
      svg.appendChild(sv('rect', {x: LABEL_W + span[0] * CELL_W - 1, y: top - 1, width: span.length * CELL_W + 1,
                                  height: nL * CELL_H + 1, 'class': 'spanbox'}));
    }
    return svg;
  }

  function chips(panel, summary, profile) {
    var box = el('div', {'class': 'chips'});
    var pmax = Math.max.apply(null, profile.concat([1e-9]));
    panel.src_tokens.forEach(function (tok, j) {
      var cls = 'chip';
      if (summary.src_units.indexOf(j) >= 0) { cls += ' inspan'; }
      if ((summary.expected_units || []).indexOf(j) >= 0) { cls += ' expected'; }
      var c = el('span', {'class': cls, title: (100 * profile[j]).toFixed(1) + '%'}, tok);
      c.style.background = color(profile[j] / pmax * 0.85);
      c.style.color = profile[j] / pmax > 0.6 ? '#fff' : '#222';
      box.appendChild(c);
    });
    return box;
  }

  function renderPanel(panel) {
    var d = panel.queries[state.query] || panel.queries.generation;
    var s = d.summary;
    var div = el('section', {'class': 'panel' + (s.weak ? ' weak' : '')});
    div.appendChild(el('h2', {}, panel.label));
    div.appendChild(el('div', {'class': 'model'}, panel.model + ' (' + panel.variant + ')'));
    var badge = el('div', {'class': 'badge ' + (s.weak ? 'weak' : 'ok')},
                   (s.weak ? '⚠ weak alignment: ' + s.reason : '✓ aligned') + ' · confidence ' + fmt(s.confidence));
    div.appendChild(badge);
    var info = el('div', {'class': 'info'});
    info.appendChild(el('span', {'class': 'label'}, 'Best-aligned source span: '));
    info.appendChild(el('span', {'class': 'spantext'}, s.src_text));
    info.appendChild(el('span', {}, ' · mass ' + fmt(s.mass) + ' · layer agreement ' + fmt(s.agreement) +
                                     ' · strongest layer L' + s.peak_layer + ', head ' + s.peak_head));
    div.appendChild(info);
    if (s.expected_mass !== null && s.expected_mass !== undefined) {
      div.appendChild(el('div', {'class': 'info'}, 'Attention on the expected source term (underlined): ' +
                                                   fmt(s.expected_mass)));
    }
    div.appendChild(chips(panel, s, d.profile));
    var wrap = el('div', {'class': 'scroll'});
    wrap.appendChild(heatmap(panel, state.query, s));
    div.appendChild(wrap);
    return div;
  }

  function select(label, options, value, onchange) {
    var wrap = el('label', {}, label + ' ');
    var s = el('select', {});
    options.forEach(function (o) {
      var opt = el('option', {value: o[0]}, o[1]);
      if (String(o[0]) === String(value)) { opt.selected = true; }
      s.appendChild(opt);
    });
    s.addEventListener('change', function () { onchange(s.value); });
    wrap.appendChild(s);
    return wrap;
  }

  function render() {
    var root = document.getElementById('tsx-term-root');
    while (root.firstChild) { root.removeChild(root.firstChild); }
    var p0 = DATA.panels[0];
    var controls = el('div', {'class': 'controls'});
    controls.appendChild(el('span', {'class': 'term'}, 'Term: ' + DATA.term));
    var queries = [['generation', 'when generating the term'], ['term', "term's own tokens as queries"]]
      .filter(function (q) { return p0.queries[q[0]]; });
    controls.appendChild(select('Query', queries, state.query, function (v) { state.query = v; render(); }));
    var heads = [[-1, 'mean of all heads']];
    for (var h = 0; h < p0.n_heads; h++) { heads.push([h, 'head ' + h]); }
    controls.appendChild(select('Head', heads, state.head, function (v) { state.head = +v; render(); }));
    controls.appendChild(select('Colour scale', [['global', 'whole map'], ['layer', 'each layer']], state.scale,
                                function (v) { state.scale = v; render(); }));
    root.appendChild(controls);
    var grid = el('div', {'class': 'panels n' + DATA.panels.length});
    DATA.panels.forEach(function (p) { grid.appendChild(renderPanel(p)); });
    root.appendChild(grid);
    requestAnimationFrame(function () {  // ready once drawn (two frames), as in bertviz_highlight.js
      requestAnimationFrame(function () { document.body.setAttribute('data-tsx-ready', '1'); });
    });
  }
  render();
})();
