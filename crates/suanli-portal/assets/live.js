// Live job pages: a job page that has not ended names its event stream in `data-live` and its
// state in `data-state`; new log lines arrive as server-sent events and are added to the page
// (its newest 400 kept), and the page reloads when the job's state changes (to show where it
// runs, its timeline and, once ended, its bill). Without this script (or without EventSource)
// the page refreshes itself every 5 s instead (a <noscript> refresh).
(function () {
  "use strict";
  var KEEP = 400;
  var root = document.querySelector("[data-live]");
  if (!root || !window.EventSource) {
    return;
  }
  var logs = document.getElementById("job-logs");
  var shown = root.getAttribute("data-state");
  var es = new EventSource(root.getAttribute("data-live"));
  es.addEventListener("log", function (e) {
    var d = JSON.parse(e.data);
    if (d.reset) {
      logs.textContent = "";
    }
    d.lines.forEach(function (l) {
      var s = document.createElement("span");
      if (l.err) {
        s.className = "stderr";
      }
      s.textContent = l.text + "\n";
      logs.appendChild(s);
    });
    while (logs.childNodes.length > KEEP) {
      logs.removeChild(logs.firstChild);
    }
    logs.hidden = false;
  });
  es.addEventListener("state", function (e) {
    if (JSON.parse(e.data).state !== shown) {
      es.close();
      window.location.reload();
    }
  });
  es.addEventListener("end", function () {
    es.close();
    window.location.reload();
  });
})();
