/* TSX-MedTrans: highlight and preselect the selected term in BertViz's head/model views.
 * Reads its data from <script type="application/json" id="tsx-highlight"> (never from markup).
 * BertViz redraws on every layer/filter change, so a MutationObserver re-applies the styling.
 * Sets <body data-tsx-ready="1"> once the visualisation has been drawn (tests and screenshots). */
(function () {
  'use strict';
  var cfg = JSON.parse(document.getElementById('tsx-highlight').textContent);
  var COLOR = '#c0392b';
  var root = document.querySelector('[id^="bertviz-"]');
  if (!root) { return; }
  var vis = root.querySelector('#vis');

  function filterValue() {
    var f = root.querySelector('select#filter');
    return f ? f.value : '0';
  }

  // Term unit indices on the left (queries) and right (keys) for BertViz's sentence-pair filters:
  // 0 all, 1 source->source, 2 translation->translation, 3 source->translation, 4 translation->source.
  function sides(filter) {
    var s = cfg.units.src, t = cfg.units.tgt, n = cfg.n_src;
    var tAll = t.map(function (i) { return i + n; });
    var all = s.concat(tAll);
    var counts = {'0': [n + cfg.n_tgt, n + cfg.n_tgt], '1': [n, n], '2': [cfg.n_tgt, cfg.n_tgt],
                  '3': [n, cfg.n_tgt], '4': [cfg.n_tgt, n]};
    var sel = {'0': [all, all], '1': [s, s], '2': [t, t], '3': [s, t], '4': [t, s]}[filter] || [all, all];
    return {left: sel[0], right: sel[1], nLeft: (counts[filter] || counts['0'])[0]};
  }

  function mark(el) {
    if (!el) { return; }
    el.style.fill = COLOR;
    el.style.fontWeight = 'bold';
  }

  function hover(el) {
    if (el && el.parentNode) {
      el.parentNode.dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));
    }
  }

  // "ready" = drawn on screen, not just built: two animation frames after the DOM is complete
  // (the model view's tens of thousands of SVG lines take seconds to paint on a slow machine).
  var readySet = false;
  function ready() {
    if (readySet) { return; }
    readySet = true;
    requestAnimationFrame(function () {
      requestAnimationFrame(function () { document.body.setAttribute('data-tsx-ready', '1'); });
    });
  }

  var lastSvg = null;
  var opened = false;

  function applyHead() {
    var svg = vis.querySelector('svg');
    if (!svg) { return; }
    var sd = sides(filterValue());
    var left = svg.querySelectorAll('#left text');
    var right = svg.querySelectorAll('#right text');
    sd.left.forEach(function (i) { mark(left[i]); });
    sd.right.forEach(function (i) { mark(right[i]); });
    if (svg !== lastSvg) {  // a fresh drawing: preselect the first term token (query side)
      lastSvg = svg;
      if (sd.left.length) { hover(left[sd.left[0]]); }
    }
    ready();
  }

  function applyModel() {
    var svg = vis.querySelector('svg');
    if (!svg) { return; }
    if (svg !== lastSvg) { lastSvg = svg; opened = false; }
    if (!opened && cfg.detail_layer !== null && cfg.detail_layer !== undefined &&
        cfg.detail_head !== null && cfg.detail_head !== undefined) {
      opened = true;
      var cells = svg.querySelectorAll('rect.attn_background');
      var perLayer = cells.length / Math.max(cfg.layers.length, 1);
      var cell = cells[cfg.detail_layer * perLayer + cfg.detail_head];
      if (cell) {
        cell.parentNode.lastElementChild.dispatchEvent(new MouseEvent('click', {bubbles: true}));
        return;  // the detail is added now; the observer calls us again
      }
    }
    var sd = sides(filterValue());
    var tokens = svg.querySelectorAll('text.token');
    sd.left.forEach(function (i) { mark(tokens[i]); });
    sd.right.forEach(function (i) { mark(tokens[sd.nLeft + i]); });
    if (tokens.length && sd.left.length && !svg.hasAttribute('data-tsx-hovered')) {
      svg.setAttribute('data-tsx-hovered', '1');
      hover(tokens[sd.left[0]]);
    }
    ready();
  }

  var apply = cfg.view === 'model' ? applyModel : applyHead;
  var pending = false;
  new MutationObserver(function () {
    if (pending) { return; }
    pending = true;
    setTimeout(function () { pending = false; apply(); }, 0);
  }).observe(vis, {childList: true, subtree: true});
  apply();
})();
