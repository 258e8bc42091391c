// Live run view: while the run has not finished, fetch its detail fragment once a second and
// swap it in; stop when the server marks it finished (or the session ends).
(function () {
  "use strict";
  function poll() {
    var el = document.getElementById("run-detail");
    if (!el || el.dataset.finished === "true") return;
    fetch(el.dataset.src, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (res) {
        if (!res.ok || res.redirected) throw new Error("stopped");
        return res.text();
      })
      .then(function (html) {
        var tpl = document.createElement("template");
        tpl.innerHTML = html.trim();
        var next = tpl.content.firstElementChild;
        if (next) el.replaceWith(next);
        setTimeout(poll, 1000);
      })
      .catch(function () {});
  }
  setTimeout(poll, 1000);
})();
