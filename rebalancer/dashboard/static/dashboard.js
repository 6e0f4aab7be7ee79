// rebalancer dashboard: swap in newer panels when the server says the state changed.
// The page is complete without this script; it only keeps the panels and the "ago" times fresh.
(function () {
  "use strict";
  var version = Number(document.body.dataset.version || 0);
  var conn = document.getElementById("conn");
  var pulling = false;

  function ago(seconds) {
    if (seconds < 60) return seconds + " s ago";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h ago";
    return Math.floor(seconds / 86400) + " d ago";
  }

  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll("time[data-at]").forEach(function (t) {
      var next = t.nextElementSibling;
      if (next && next.classList.contains("ago")) {
        next.textContent = "(" + ago(Math.max(0, Math.round(now - Number(t.dataset.at)))) + ")";
      }
    });
  }

  function setConn(ok, text) {
    if (!conn) return;
    conn.textContent = text;
    conn.classList.toggle("down", !ok);
  }

  function pull() {
    if (pulling) return;
    pulling = true;
    fetch("/api/panels", { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (doc) {
        Object.keys(doc.panels).forEach(function (id) {
          var el = document.getElementById(id);
          if (el) el.innerHTML = doc.panels[id];
        });
        version = doc.version;
        document.body.dataset.version = String(version);
        tick();
      })
      .catch(function () { setConn(false, "reconnecting"); })
      .finally(function () { pulling = false; });
  }

  if (window.EventSource) {
    var events = new EventSource("/events");
    events.addEventListener("update", function (ev) {
      setConn(true, "live");
      var doc = JSON.parse(ev.data);
      if (doc.version !== version) pull();
    });
    events.onerror = function () { setConn(false, "reconnecting"); };
  } else {
    setInterval(pull, 5000);
  }
  tick();
  setInterval(tick, 1000);
})();
