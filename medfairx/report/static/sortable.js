/* medfairx leaderboards: sortable tables and the strategy selector. Plain JS, no library.
 * Click a header of a table.sortable to sort by that column; click again to reverse.
 * Cells may carry data-sort (a number, or "" for a missing value, sorted last).
 * When everything ran, <html data-mfx-js="ok"> is set; an error sets "error: ...". */
(function () {
  "use strict";
  var root = document.documentElement;

  function reportError(msg) {
    root.setAttribute("data-mfx-js", "error: " + msg);
  }
  window.addEventListener("error", function (ev) { reportError(String(ev.message)); });

  function key(cell) {
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    if (raw === "") { return { missing: true, num: false, v: "" }; }
    var n = Number(raw);
    return isNaN(n) ? { missing: false, num: false, v: raw.toLowerCase() } : { missing: false, num: true, v: n };
  }

  function compare(a, b) {
    if (a.missing || b.missing) { return (a.missing ? 1 : 0) - (b.missing ? 1 : 0); }
    if (a.num && b.num) { return a.v - b.v; }
    if (a.num !== b.num) { return a.num ? -1 : 1; }
    return a.v < b.v ? -1 : (a.v > b.v ? 1 : 0);
  }

  function sortBy(table, th) {
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var asc = th.getAttribute("aria-sort") !== "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (row, i) { return { row: row, i: i, k: key(row.cells[col] || row.cells[0]) }; });
    keyed.sort(function (x, y) {
      var missingFirst = (x.k.missing ? 1 : 0) - (y.k.missing ? 1 : 0);
      if (missingFirst !== 0) { return missingFirst; }   /* missing values always last */
      var c = compare(x.k, y.k);
      return (asc ? c : -c) || x.i - y.i;
    });
    keyed.forEach(function (item) { body.appendChild(item.row); });
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
  }

  function initTables() {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
      if (!table.tHead || !table.tBodies.length) { return; }
      var heads = table.tHead.rows[table.tHead.rows.length - 1].cells;
      Array.prototype.forEach.call(heads, function (th) {
        th.classList.add("sort-handle");
        th.setAttribute("title", "Click to sort");
        th.addEventListener("click", function () { sortBy(table, th); });
      });
    });
  }

  function initStrategySelector() {
    var select = document.getElementById("strategy-select");
    if (!select) { return; }
    var sections = document.querySelectorAll("[data-strategy]");
    function show() {
      Array.prototype.forEach.call(sections, function (s) {
        s.hidden = select.value !== "all" && s.getAttribute("data-strategy") !== select.value;
      });
    }
    select.addEventListener("change", show);
    show();
  }

  function selfTest() {
    /* file://...#mfx-selftest: sort the first sortable table by its first column, descending,
     * and record the resulting first-column order (used by the browser test). */
    if (window.location.hash !== "#mfx-selftest") { return; }
    var table = document.querySelector("table.sortable");
    if (!table) { root.setAttribute("data-mfx-selftest", "no-table"); return; }
    var th = table.tHead.rows[table.tHead.rows.length - 1].cells[0];
    th.click();
    th.click();
    var order = Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.cells[0].textContent.trim(); });
    root.setAttribute("data-mfx-selftest", order.join("|"));
  }

  try {
    initTables();
    initStrategySelector();
    selfTest();
    if (!root.hasAttribute("data-mfx-js")) { root.setAttribute("data-mfx-js", "ok"); }
  } catch (err) {
    reportError(String(err && err.message ? err.message : err));
  }
})();
