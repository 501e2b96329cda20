// Live job pages: a job page that has not ended names its event stream in `data-live`; new log
// lines and state changes arrive as server-sent events and are added to the page, and the page
// reloads once the job has ended (to show its final facts and bill). Without this script (or
// without EventSource) the page refreshes itself every 5 s instead (a <noscript> refresh).
(function () {
  "use strict";
  var root = document.querySelector("[data-live]");
  if (!root || !window.EventSource) {
    return;
  }
  var logs = document.getElementById("job-logs");
  var state = document.getElementById("job-state");
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
    logs.hidden = false;
  });
  es.addEventListener("state", function (e) {
    var d = JSON.parse(e.data);
    var s = document.createElement("span");
    s.className = "state " + d.state;
    s.textContent = d.label;
    state.replaceChildren(s);
  });
  es.addEventListener("end", function () {
    es.close();
    window.location.reload();
  });
})();
