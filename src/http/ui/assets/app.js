// restic-manager web UI: every change goes through the JSON API (with the
// session's CSRF token from <meta name="csrf-token">), and the job page and
// presence badges follow Server-Sent Events. No framework, no build step.
//
// Markup conventions (rendered by src/http/ui):
// - <button data-path data-method [data-body] [data-confirm] [data-then]>
//   calls the API; data-then is "job" (open the new job), "reload",
//   "go" (open data-href), "remove-row" or "message" (show data-message).
// - <form data-form="kind" data-path data-method data-then [data-confirm]>
//   builds the JSON body for its kind (see BODY_BUILDERS) and calls the
//   API; an error also goes into the form's [data-form-error] box, and
//   nothing typed is lost. data-then "open" opens data-href + the new id;
//   "bulk-result" writes a bulk answer into #bulk-result.
// - [data-bulk-host] checkboxes are the host list's selection
//   ([data-bulk-all] checks the page); <button data-add-fieldset="id">
//   appends an emptied copy of the last fieldset of #id.
// - #login-form, #enroll-form, #job-page, [data-presence] have their own
//   behaviour below.
(function () {
  "use strict";

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var CSRF = csrfMeta ? csrfMeta.getAttribute("content") : "";
  var TERMINAL = { succeeded: true, failed: true, cancelled: true };

  // ---- helpers -----------------------------------------------------------

  function flash(message, kind) {
    var el = document.getElementById("flash");
    if (!el) {
      return;
    }
    el.textContent = message;
    el.className = "flash flash-" + (kind || "info");
  }

  // Calls the API; resolves with the parsed JSON (or null), rejects with an
  // Error carrying the API's message, status and code.
  function api(method, path, body) {
    var headers = { Accept: "application/json" };
    if (method !== "GET") {
      headers["X-CSRF-Token"] = CSRF;
    }
    var init = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (resp) {
      return resp.text().then(function (text) {
        var data = null;
        if (text) {
          try {
            data = JSON.parse(text);
          } catch (e) {
            data = null;
          }
        }
        if (resp.status === 401 && path !== "/api/v1/auth/login") {
          // The session expired: log in again and come back here.
          window.location.assign("/login?next=" +
            encodeURIComponent(window.location.pathname + window.location.search));
        }
        if (!resp.ok) {
          var message = data && data.error && data.error.message
            ? data.error.message
            : "request failed (HTTP " + resp.status + ")";
          var err = new Error(message);
          err.status = resp.status;
          err.code = data && data.error ? data.error.code : "";
          throw err;
        }
        return data;
      });
    });
  }

  function lines(text) {
    return String(text || "")
      .split(/\r?\n/)
      .map(function (s) { return s.trim(); })
      .filter(function (s) { return s.length > 0; });
  }

  // A number field's value, or undefined when empty.
  function num(form, name) {
    var field = form.elements.namedItem(name);
    if (!field || field.value.trim() === "") {
      return undefined;
    }
    return Number(field.value);
  }

  function text(form, name) {
    var field = form.elements.namedItem(name);
    return field ? field.value : "";
  }

  // Sets `key` on `obj` only when `value` is not undefined/empty.
  function put(obj, key, value) {
    if (value !== undefined && value !== "") {
      obj[key] = value;
    }
    return obj;
  }

  function formatBytes(n) {
    var units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if (!(n >= 1024)) {
      return Math.max(0, Math.round(n || 0)) + " B";
    }
    var v = n / 1024;
    var i = 0;
    while (v >= 1024 && i + 1 < units.length) {
      v /= 1024;
      i += 1;
    }
    return (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + " " + units[i];
  }

  function formatDuration(secs) {
    secs = Math.max(0, Math.floor(secs));
    var h = Math.floor(secs / 3600);
    var m = Math.floor((secs % 3600) / 60);
    var s = secs % 60;
    if (h > 0) {
      return h + "h " + m + "m " + s + "s";
    }
    if (m > 0) {
      return m + "m " + s + "s";
    }
    return s + "s";
  }

  // "2026-01-02T03:04:05.678Z" -> "2026-01-02 03:04:05 UTC"
  function formatTime(iso) {
    if (!iso) {
      return "—";
    }
    var d = new Date(iso);
    if (isNaN(d.getTime())) {
      return iso;
    }
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  function badge(kind, label) {
    var span = document.createElement("span");
    span.className = "badge badge-" + kind;
    span.setAttribute("data-badge", kind);
    span.textContent = label;
    return span;
  }

  // What to do after a successful call.
  function after(el, data) {
    var then = el.getAttribute("data-then") || "message";
    if (then === "job" && data && data.id) {
      window.location.assign("/jobs/" + encodeURIComponent(data.id));
    } else if (then === "go") {
      window.location.assign(el.getAttribute("data-href") || "/");
    } else if (then === "open" && data && data.id) {
      window.location.assign((el.getAttribute("data-href") || "/") + encodeURIComponent(data.id));
    } else if (then === "bulk-result") {
      showBulkResult(data);
    } else if (then === "reload") {
      window.location.reload();
    } else if (then === "remove-row") {
      var row = el.closest("tr");
      if (row) {
        row.remove();
      }
      flash(el.getAttribute("data-message") || "Done.", "ok");
    } else {
      flash(el.getAttribute("data-message") || "Done.", "ok");
    }
  }

  // The name a host row of the host list shows, for a bulk answer.
  function hostName(id) {
    var rows = document.querySelectorAll("tr[data-host-id]");
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute("data-host-id") === id) {
        return rows[i].getAttribute("data-host-name") || id;
      }
    }
    return id;
  }

  // A bulk answer: what was done, then each host skipped and why.
  function showBulkResult(data) {
    var box = document.getElementById("bulk-result");
    if (!box || !data) {
      return;
    }
    box.textContent = "";
    var head = document.createElement("p");
    head.id = "bulk-summary";
    if (data.created !== undefined) {
      head.textContent = "Created " + plural(data.created, "job", "jobs") + ".";
    } else {
      head.textContent = "Cancelled " + plural(data.cancelled, "job", "jobs") + " (" +
        data.queued_cancelled + " queued, " + data.stop_requested + " asked to stop).";
    }
    box.appendChild(head);
    var skipped = data.skipped || [];
    if (skipped.length > 0) {
      var title = document.createElement("p");
      title.textContent = "Skipped " + plural(skipped.length, "host", "hosts") + ":";
      box.appendChild(title);
      var list = document.createElement("ul");
      list.id = "bulk-skipped";
      skipped.forEach(function (s) {
        var li = document.createElement("li");
        li.setAttribute("data-host-id", s.host_id);
        li.textContent = hostName(s.host_id) + ": " + s.reason;
        list.appendChild(li);
      });
      box.appendChild(list);
    }
    flash(head.textContent, "ok");
  }

  function checkedHosts() {
    return Array.prototype.filter
      .call(document.querySelectorAll("input[data-bulk-host]"), function (c) { return c.checked; })
      .map(function (c) { return c.value; });
  }

  // A form's error box (next to its fields), if it has one.
  function formError(form, message) {
    var box = form.querySelector("[data-form-error]");
    if (box) {
      box.textContent = message;
    }
  }

  function busy(el, on) {
    var buttons = el.tagName === "FORM" ? el.querySelectorAll("button") : [el];
    Array.prototype.forEach.call(buttons, function (b) {
      b.disabled = on;
    });
  }

  // ---- action buttons ----------------------------------------------------

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) {
      return;
    }
    var logout = target.closest("[data-logout]");
    if (logout) {
      api("POST", "/api/v1/auth/logout").then(
        function () { window.location.assign("/login"); },
        function (err) { flash(err.message, "error"); }
      );
      return;
    }
    var copy = target.closest("[data-copy]");
    if (copy) {
      var source = document.getElementById(copy.getAttribute("data-copy"));
      if (source && navigator.clipboard) {
        navigator.clipboard.writeText(source.textContent).then(
          function () { flash("Copied.", "ok"); },
          function () { flash("Copy failed; select the text instead.", "error"); }
        );
      }
      return;
    }
    var adder = target.closest("button[data-add-fieldset]");
    if (adder) {
      var holder = document.getElementById(adder.getAttribute("data-add-fieldset"));
      var sets = holder ? holder.querySelectorAll(":scope > fieldset") : [];
      var last = sets.length > 0 ? sets[sets.length - 1] : null;
      if (last) {
        var copy = last.cloneNode(true);
        Array.prototype.forEach.call(copy.querySelectorAll("input, textarea, select"), function (f) {
          if (f.type === "checkbox") {
            f.checked = f.name === "enabled";
          } else if (f.tagName === "SELECT") {
            f.selectedIndex = 0;
          } else {
            f.value = "";
          }
        });
        holder.appendChild(copy);
      }
      return;
    }
    var all = target.closest("input[data-bulk-all]");
    if (all) {
      Array.prototype.forEach.call(document.querySelectorAll("input[data-bulk-host]"), function (c) {
        c.checked = all.checked;
      });
      return;
    }
    var button = target.closest("button[data-path]");
    if (!button || button.disabled) {
      return;
    }
    var question = button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      return;
    }
    var body;
    var raw = button.getAttribute("data-body");
    if (raw) {
      try {
        body = JSON.parse(raw);
      } catch (e) {
        flash("This button is broken: " + e.message, "error");
        return;
      }
    }
    busy(button, true);
    api(button.getAttribute("data-method") || "POST", button.getAttribute("data-path"), body).then(
      function (data) {
        busy(button, false);
        after(button, data);
      },
      function (err) {
        busy(button, false);
        flash(err.message, "error");
      }
    );
  });

  // ---- forms ---------------------------------------------------------------

  var BODY_BUILDERS = {
    repository: function (f) {
      var body = { url: text(f, "url").trim() };
      put(body, "username", text(f, "username").trim());
      put(body, "password", text(f, "password"));
      put(body, "credential", text(f, "credential"));
      return body;
    },
    "source-group": function (f) {
      var policy = {};
      ["keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"]
        .forEach(function (k) { put(policy, k, num(f, k)); });
      put(policy, "keep_within", text(f, "keep_within").trim());
      var body = {
        name: text(f, "name").trim(),
        includes: lines(text(f, "includes")),
        excludes: lines(text(f, "excludes")),
        retention_policy: Object.keys(policy).length > 0 ? policy : null
      };
      put(body, "retry_max", num(f, "retry_max"));
      put(body, "retry_backoff_seconds", num(f, "retry_backoff_seconds"));
      var prune = f.querySelector('input[name="prune_after_forget"]');
      if (prune) { body.prune_after_forget = prune.checked; }
      return body;
    },
    // A dump source group (the host page's blank form, and those the
    // discovered databases pre-fill): an empty database means every one.
    "dump-group": function (f) {
      var dump = { driver: text(f, "driver") };
      put(dump, "container", text(f, "container").trim());
      var database = text(f, "database").trim();
      if (database !== "") {
        dump.database = database;
      } else if (dump.driver !== "sqlite") {
        dump.all = true;
      }
      put(dump, "user", text(f, "user").trim());
      put(dump, "password", text(f, "password"));
      put(dump, "path", text(f, "path").trim());
      return { name: text(f, "name").trim(), type: "dump", dump: dump };
    },
    // A list of health checks (the host page's form, a policy's
    // health_checks): one per fieldset[data-health-check], blank ones
    // (no name, no target) left out.
    "health-checks": function (f) {
      var checks = [];
      Array.prototype.forEach.call(f.querySelectorAll("fieldset[data-health-check]"), function (c) {
        var name = text(c, "name").trim();
        var target = text(c, "target").trim();
        if (name === "" && target === "") {
          return; // a blank check
        }
        var check = { name: name, type: text(c, "type"), target: target };
        put(check, "interval_seconds", num(c, "interval_seconds"));
        put(check, "timeout_seconds", num(c, "timeout_seconds"));
        put(check, "expect_status", num(c, "expect_status"));
        checks.push(check);
      });
      return checks;
    },
    schedule: function (f) {
      var groups = Array.prototype.filter
        .call(f.querySelectorAll('input[name="source_groups"]'), function (c) { return c.checked; })
        .map(function (c) { return c.value; });
      var enabled = f.querySelector('input[name="enabled"]');
      var body = {
        cron_expr: text(f, "cron_expr").trim(),
        enabled: enabled ? enabled.checked : true,
        source_groups: groups
      };
      put(body, "kind", text(f, "kind"));
      return body;
    },
    bulk: function (f) {
      var body = { host_ids: checkedHosts(), kind: text(f, "kind") };
      put(body, "source_group", text(f, "source_group").trim());
      return body;
    },
    "bulk-cancel": function () {
      return { host_ids: checkedHosts() };
    },
    policy: function (f) {
      var labels = {};
      lines(text(f, "selector")).forEach(function (line) {
        var at = line.indexOf("=");
        if (at <= 0) {
          throw new Error("selector: expected key=value on each line, got \"" + line + "\"");
        }
        labels[line.slice(0, at).trim()] = line.slice(at + 1).trim();
      });
      var groups = [];
      Array.prototype.forEach.call(f.querySelectorAll("fieldset[data-policy-group]"), function (g) {
        if (text(g, "name").trim() === "" && lines(text(g, "includes")).length === 0) {
          return; // a blank group
        }
        groups.push(BODY_BUILDERS["source-group"](g));
      });
      var schedules = [];
      Array.prototype.forEach.call(f.querySelectorAll("fieldset[data-policy-schedule]"), function (s) {
        var cron = text(s, "cron_expr").trim();
        if (cron === "" && text(s, "source_groups").trim() === "") {
          return; // a blank schedule
        }
        var enabled = s.querySelector('input[name="enabled"]');
        schedules.push({
          cron_expr: cron,
          kind: text(s, "kind"),
          enabled: enabled ? enabled.checked : true,
          source_groups: text(s, "source_groups").split(",")
            .map(function (n) { return n.trim(); })
            .filter(function (n) { return n !== ""; })
        });
      });
      var repository = text(f, "repository_id");
      return {
        name: text(f, "policy_name").trim(),
        selector: { labels: labels },
        source_groups: groups,
        schedules: schedules,
        repository_id: repository === "" ? null : repository,
        health_checks: BODY_BUILDERS["health-checks"](f)
      };
    },
    "shared-repository": function (f) {
      // A change sends only what was changed (absent fields keep their
      // value): the URL shown has its credentials hidden, and the
      // secrets are never shown at all.
      var editing = (f.getAttribute("data-method") || "POST") !== "POST";
      var body = {};
      ["name", "url", "username"].forEach(function (k) {
        var field = f.elements.namedItem(k);
        var value = field.value.trim();
        if (editing ? value !== field.defaultValue.trim() : value !== "") {
          body[k] = value;
        }
      });
      put(body, "password", text(f, "password"));
      put(body, "credential", text(f, "credential"));
      var maintenance = f.elements.namedItem("maintenance_host_id");
      if (maintenance) {
        var chosen = maintenance.value;
        var before = maintenance.querySelector("option[selected]");
        var was = before ? before.value : "";
        if (!editing) {
          put(body, "maintenance_host_id", chosen);
        } else if (chosen !== was) {
          body.maintenance_host_id = chosen === "" ? null : chosen;
        }
      }
      return body;
    },
    "host-name": function (f) {
      var name = text(f, "display_name").trim();
      return { display_name: name === "" ? null : name };
    },
    "user-create": function (f) {
      return { username: text(f, "username").trim(), password: text(f, "password"), role: text(f, "role") };
    },
    "user-role": function (f) {
      return { role: text(f, "role") };
    },
    "user-password": function (f) {
      return { password: text(f, "password") };
    },
    channel: function (f) {
      var kind = text(f, "type");
      var events = Array.prototype.filter
        .call(f.querySelectorAll('input[name="events"]'), function (c) { return c.checked; })
        .map(function (c) { return c.value; });
      var body = { name: text(f, "name").trim(), type: kind, events: events };
      if (kind === "webhook") {
        body.url = text(f, "url").trim();
        if (text(f, "secret") !== "") body.secret = text(f, "secret");
      } else {
        body.to = text(f, "to").split(",").map(function (s) { return s.trim(); })
          .filter(function (s) { return s !== ""; });
      }
      var labels = {};
      text(f, "labels").split(",").forEach(function (pair) {
        var at = pair.indexOf("=");
        if (at > 0) labels[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
      });
      if (Object.keys(labels).length > 0) body.selector = { labels: labels };
      return body;
    }
  };

  function submitLogin(form) {
    var error = document.getElementById("login-error");
    error.textContent = "";
    busy(form, true);
    api("POST", "/api/v1/auth/login", {
      username: text(form, "username"),
      password: text(form, "password")
    }).then(
      function () {
        window.location.assign(form.getAttribute("data-next") || "/");
      },
      function (err) {
        busy(form, false);
        if (err.status === 401) {
          error.textContent = "Wrong user name or password.";
        } else if (err.status === 429) {
          error.textContent = "Locked out: " + err.message + ".";
        } else {
          error.textContent = err.message;
        }
      }
    );
  }

  function submitEnrollment(form) {
    busy(form, true);
    api("POST", "/api/v1/enrollment-tokens", { ttl_seconds: num(form, "ttl_seconds") }).then(
      function (data) {
        busy(form, false);
        var command = "restic-manager-agent enroll --server " + form.getAttribute("data-server-url") +
          " --token " + data.token;
        document.getElementById("enroll-command").textContent = command;
        document.getElementById("enroll-expires").textContent = formatTime(data.expires_at);
        document.getElementById("enroll-result").hidden = false;
        var tbody = document.querySelector("#token-list tbody");
        if (tbody) {
          var row = document.createElement("tr");
          row.setAttribute("data-token-id", data.id);
          var cells = [data.id, "you", formatTime(new Date().toISOString()), formatTime(data.expires_at)];
          cells.forEach(function (value, i) {
            var td = document.createElement("td");
            if (i === 0) {
              var code = document.createElement("code");
              code.textContent = value;
              td.appendChild(code);
            } else {
              td.textContent = value;
            }
            row.appendChild(td);
          });
          var actions = document.createElement("td");
          var revoke = document.createElement("button");
          revoke.type = "button";
          revoke.textContent = "Revoke";
          revoke.setAttribute("data-change", "");
          revoke.setAttribute("data-method", "DELETE");
          revoke.setAttribute("data-path", "/api/v1/enrollment-tokens/" + encodeURIComponent(data.id));
          revoke.setAttribute("data-confirm", "Revoke this enrolment token?");
          revoke.setAttribute("data-then", "remove-row");
          actions.appendChild(revoke);
          row.appendChild(actions);
          tbody.insertBefore(row, tbody.firstChild);
          var none = document.getElementById("no-tokens");
          if (none) {
            none.hidden = true;
          }
        }
      },
      function (err) {
        busy(form, false);
        flash(err.message, "error");
      }
    );
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) {
      return;
    }
    if (form.id === "login-form") {
      event.preventDefault();
      submitLogin(form);
      return;
    }
    if (form.id === "enroll-form") {
      event.preventDefault();
      submitEnrollment(form);
      return;
    }
    var kind = form.getAttribute("data-form");
    if (!kind) {
      return; // a plain GET form (filters)
    }
    event.preventDefault();
    var build = BODY_BUILDERS[kind];
    if (!build) {
      flash("Unknown form " + kind, "error");
      return;
    }
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      return;
    }
    var body;
    try {
      body = build(form);
    } catch (e) {
      formError(form, e.message);
      flash(e.message, "error");
      return;
    }
    formError(form, "");
    busy(form, true);
    api(form.getAttribute("data-method") || "POST", form.getAttribute("data-path"), body).then(
      function (data) {
        busy(form, false);
        after(form, data);
      },
      function (err) {
        busy(form, false);
        formError(form, err.message);
        flash(err.message, "error");
      }
    );
  });

  // ---- the job page --------------------------------------------------------

  function setText(id, value) {
    var el = document.getElementById(id);
    if (el) {
      el.textContent = value;
    }
  }

  // A count with its noun ("1 file", "2 files"); format::plural on the server.
  function plural(n, one, many) {
    return n + " " + (n === 1 ? one : many);
  }

  // A throughput; "—" until something was measured.
  function throughput(bps) {
    return bps > 0 ? formatBytes(bps) + "/s" : "—";
  }

  // A backup summary's final figures, or null; job.rs final_figures.
  function finalFigures(stats) {
    if (!stats || typeof stats.total_bytes_processed !== "number" ||
        typeof stats.total_files_processed !== "number") {
      return null;
    }
    var bytes = stats.total_bytes_processed;
    var secs = typeof stats.total_duration === "number" ? stats.total_duration : 0;
    return {
      percent: 100,
      bytes: formatBytes(bytes) + " of " + formatBytes(bytes),
      files: stats.total_files_processed + " of " + plural(stats.total_files_processed, "file", "files"),
      throughput: throughput(secs > 0 ? Math.floor(bytes / secs) : 0),
      eta: "—"
    };
  }

  function showFigures(f) {
    var section = document.getElementById("job-progress-section");
    var bar = document.getElementById("job-progress");
    if (!section || !bar) {
      return;
    }
    section.hidden = false;
    bar.value = f.percent;
    setText("progress-percent", f.percent.toFixed(1) + "%");
    setText("progress-bytes", f.bytes);
    setText("progress-files", f.files);
    setText("progress-throughput", f.throughput);
    setText("progress-eta", f.eta);
  }

  function updateProgress(p) {
    var bar = document.getElementById("job-progress");
    if (!bar) {
      return;
    }
    showFigures({
      percent: Math.max(0, Math.min(100, (p.percent_done || 0) * 100)),
      bytes: formatBytes(p.bytes_done) + " of " + formatBytes(p.total_bytes),
      files: p.files_done + " of " + plural(p.total_files, "file", "files"),
      throughput: throughput(p.throughput_bps),
      eta: p.eta_seconds === null || p.eta_seconds === undefined ? "—" : formatDuration(p.eta_seconds)
    });
    bar.setAttribute("data-updates", String(Number(bar.getAttribute("data-updates") || 0) + 1));
  }

  // ---- the job log for people ------------------------------------------
  // The same rules as src/http/ui/log_lines.rs (checked against the same
  // cases, log_cases.json): restic's JSON lines as short text, plain lines
  // as printed. Returns {kind, text}; text null means "show the raw line".

  function short(id) {
    return String(id).slice(0, 8);
  }

  function field(map, key) {
    var v = map[key];
    return typeof v === "string" && v !== "" ? v : null;
  }

  function count(map, key) {
    var v = map[key];
    return Number.isInteger(v) && v >= 0 ? v : 0;
  }

  function statusText(map) {
    var percent = Math.max(0, Math.min(100, (typeof map.percent_done === "number" ? map.percent_done : 0) * 100));
    var parts = [percent.toFixed(1) + "%"];
    if ("total_bytes" in map) {
      parts.push(formatBytes(count(map, "bytes_done")) + " of " + formatBytes(count(map, "total_bytes")));
    }
    if ("total_files" in map) {
      parts.push(count(map, "files_done") + " of " + plural(count(map, "total_files"), "file", "files"));
    }
    if (Number.isInteger(map.seconds_remaining) && map.seconds_remaining >= 0) {
      parts.push("ETA " + formatDuration(map.seconds_remaining));
    }
    return "progress " + parts.join(" · ");
  }

  function genericText(type, map) {
    var fields = Object.keys(map).filter(function (k) {
      var v = map[k];
      return k !== "message_type" && !(v !== null && typeof v === "object");
    }).sort().map(function (k) {
      return k.replace(/_/g, " ") + " " + summaryValue(k, map[k]);
    });
    var body = fields.length > 0 ? fields.join(", ") : "JSON output";
    return type ? type + ": " + body : body;
  }

  function summaryText(map) {
    if ("files_new" in map) {
      var parts = [plural(count(map, "files_new"), "new file", "new files")];
      [["files_changed", "changed"], ["files_unmodified", "unchanged"]].forEach(function (kw) {
        if (count(map, kw[0]) > 0) {
          parts.push(count(map, kw[0]) + " " + kw[1]);
        }
      });
      parts.push(formatBytes(count(map, "data_added")) + " added");
      if (typeof map.total_duration === "number") {
        parts.push(map.total_duration.toFixed(1) + " s");
      }
      if (field(map, "snapshot_id")) {
        parts.push("snapshot " + short(map.snapshot_id));
      }
      return "backup done: " + parts.join(", ");
    }
    if ("num_errors" in map) {
      var n = count(map, "num_errors");
      return n === 0 ? "check done: no errors found" : "check done: " + plural(n, "error", "errors") + " found";
    }
    if ("files_restored" in map) {
      return "restore done: " + count(map, "files_restored") + " of " +
        plural(count(map, "total_files"), "file", "files") + " restored (" +
        formatBytes(count(map, "bytes_restored")) + " of " + formatBytes(count(map, "total_bytes")) + ")";
    }
    return genericText("summary", map);
  }

  function errorText(map) {
    var e = map.error;
    var message;
    if (e !== null && typeof e === "object" && !Array.isArray(e)) {
      if (field(e, "message")) {
        message = e.message;
      } else {
        var errno = Number.isInteger(e.Err) && e.Err >= 0 ? e.Err : null;
        var what = errno === 2 ? "no such file or directory"
          : errno === 13 ? "permission denied"
          : errno !== null ? "error " + errno : "failed";
        message = (field(e, "Op") || "access") + " " + (field(e, "Path") || "") + ": " + what;
      }
    } else if (typeof e === "string") {
      message = e;
    } else {
      message = "unknown error";
    }
    var line = "error";
    if (field(map, "during")) {
      line += " during " + map.during;
    }
    if (field(map, "item") && message.indexOf(map.item) < 0) {
      line += " on " + map.item;
    }
    return line + ": " + message;
  }

  function objectLine(map) {
    var type = field(map, "message_type");
    var action = field(map, "action");
    if ((type === "status" || type === "verbose_status") && action === "scan_finished") {
      return { kind: "verbose", text: "scan finished: " + plural(count(map, "total_files"), "file", "files") +
        ", " + formatBytes(count(map, "data_size")) };
    }
    if (type === "status") {
      return { kind: "status", text: statusText(map) };
    }
    if (type === "verbose_status") {
      var line = (action || "item") + " " + (field(map, "item") || "");
      if (count(map, "data_size") > 0) {
        line += " (" + formatBytes(count(map, "data_size")) + ")";
      }
      return { kind: "verbose", text: line };
    }
    if (type === "summary") {
      return { kind: "summary", text: summaryText(map) };
    }
    if (type === "error") {
      return { kind: "error", text: errorText(map) };
    }
    if (type === "exit_error") {
      var message = field(map, "message") || "restic failed (exit code " + count(map, "code") + ")";
      return { kind: /^warning/i.test(message) ? "warning" : "error", text: message };
    }
    if (type === "initialized") {
      return { kind: "summary", text: "repository " + short(field(map, "id") || "?") + " created at " +
        (field(map, "repository") || "?") };
    }
    if (type === "version") {
      return { kind: "json", text: "restic " + (field(map, "version") || "?") + " (" +
        (field(map, "go_version") || "?") + " on " + (field(map, "go_os") || "?") + "/" +
        (field(map, "go_arch") || "?") + ")" };
    }
    return { kind: "json", text: genericText(type, map) };
  }

  function arrayText(items) {
    var groups = items.filter(function (i) { return i !== null && typeof i === "object" && "keep" in i; });
    if (groups.length > 0 && groups.length === items.length) {
      var total = function (key) {
        return items.reduce(function (sum, i) { return sum + (Array.isArray(i[key]) ? i[key].length : 0); }, 0);
      };
      return "forget: keep " + plural(total("keep"), "snapshot", "snapshots") + ", remove " +
        plural(total("remove"), "snapshot", "snapshots");
    }
    if (items.length > 0 && items.every(function (i) { return i !== null && typeof i === "object" && "short_id" in i; })) {
      return plural(items.length, "snapshot", "snapshots") + " listed";
    }
    return "JSON list of " + plural(items.length, "entry", "entries");
  }

  function logLine(stream, payload) {
    var trimmed = String(payload).trim();
    if (trimmed.charAt(0) === "{" || trimmed.charAt(0) === "[") {
      var value;
      var parsed = true;
      try {
        value = JSON.parse(trimmed);
      } catch (e) {
        parsed = false;
      }
      if (parsed) {
        if (Array.isArray(value)) {
          return { kind: "json", text: arrayText(value) };
        }
        if (value !== null && typeof value === "object") {
          return objectLine(value);
        }
        return { kind: "json", text: JSON.stringify(value) };
      }
    }
    var kind = "text";
    if (stream !== "event" && (trimmed.indexOf("Fatal:") === 0 || /^error/i.test(trimmed))) {
      kind = "error";
    } else if (/^warning/i.test(trimmed)) {
      kind = "warning";
    }
    return { kind: kind, text: null };
  }

  // A log line element, as job.rs renders it.
  function lineElement(line) {
    var shown = logLine(line.stream, line.payload);
    var div = document.createElement("div");
    div.className = "line line-" + line.stream + " kind-" + shown.kind;
    div.setAttribute("data-seq", String(line.seq));
    div.setAttribute("data-kind", shown.kind);
    if (shown.text === null) {
      div.textContent = line.payload;
    } else {
      var human = document.createElement("span");
      human.className = "human";
      human.textContent = shown.text;
      var raw = document.createElement("span");
      raw.className = "raw";
      raw.textContent = line.payload;
      div.appendChild(human);
      div.appendChild(raw);
    }
    return div;
  }

  function appendLine(line) {
    var log = document.getElementById("job-log");
    if (!log) {
      return;
    }
    var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    var div = lineElement(line);
    div.setAttribute("data-live", "");
    log.appendChild(div);
    var empty = document.getElementById("job-log-empty");
    if (empty) {
      empty.hidden = true;
    }
    if (atBottom) {
      log.scrollTop = log.scrollHeight;
    }
  }

  function summaryValue(key, value) {
    if (typeof value === "number") {
      if (key.indexOf("bytes") >= 0 || key.indexOf("data_added") === 0 || /_size$/.test(key)) {
        return formatBytes(value);
      }
      if (/duration$/.test(key)) {
        return value.toFixed(1) + " s";
      }
      return String(value);
    }
    if (value === null || value === undefined) {
      return "—";
    }
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  function renderSummary(stats) {
    var section = document.getElementById("job-summary");
    var body = document.getElementById("job-summary-body");
    if (!section || !body || !stats || typeof stats !== "object") {
      return;
    }
    var dl = document.createElement("dl");
    dl.className = "facts";
    dl.id = "job-summary-list";
    Object.keys(stats).forEach(function (key) {
      if (key === "message_type") {
        return;
      }
      var dt = document.createElement("dt");
      dt.textContent = key.replace(/_/g, " ");
      var dd = document.createElement("dd");
      dd.setAttribute("data-key", key);
      dd.textContent = summaryValue(key, stats[key]);
      dl.appendChild(dt);
      dl.appendChild(dd);
    });
    body.replaceChildren(dl);
    section.hidden = false;
  }

  function updateStatus(root, st) {
    root.setAttribute("data-status", st.status);
    var holder = document.getElementById("job-status");
    if (holder) {
      var warned = st.status === "succeeded" && st.warning;
      holder.replaceChildren(warned ? badge("warning", "succeeded with warnings") : badge(st.status, st.status));
    }
    setText("job-started", formatTime(st.started_at));
    setText("job-finished", formatTime(st.finished_at));
    if (st.started_at && st.finished_at) {
      setText("job-duration", formatDuration((new Date(st.finished_at) - new Date(st.started_at)) / 1000));
    }
    var error = document.getElementById("job-error");
    if (error) {
      error.textContent = st.error || "";
      error.hidden = !st.error;
    }
    var warning = document.getElementById("job-warning");
    if (warning) {
      warning.textContent = st.warning || "";
      warning.hidden = !st.warning;
    }
    if (TERMINAL[st.status]) {
      root.setAttribute("data-terminal", "true");
      var cancel = document.getElementById("cancel-job");
      if (cancel) {
        cancel.remove();
      }
      // As the server renders a finished job (job.rs progress_figures):
      // a success shows its summary's final figures, or its last progress
      // completed; no ETA once the job ended.
      var bar = document.getElementById("job-progress");
      var shown = bar && bar.closest("section") && !bar.closest("section").hidden;
      var final = st.status === "succeeded" ? finalFigures(st.stats) : null;
      if (final) {
        showFigures(final);
      } else if (shown) {
        if (st.status === "succeeded") {
          bar.value = 100;
          setText("progress-percent", "100.0%");
        }
        setText("progress-eta", "—");
      }
      renderSummary(st.stats);
    }
  }

  function followJob(root) {
    var log = document.getElementById("job-log");
    if (log) {
      log.scrollTop = log.scrollHeight;
    }
    if (root.getAttribute("data-terminal") === "true" || typeof EventSource === "undefined") {
      return;
    }
    var lastSeq = Number(root.getAttribute("data-last-seq") || 0);
    var source = new EventSource(root.getAttribute("data-events") + "?after_seq=" + lastSeq);
    source.addEventListener("open", function () {
      root.setAttribute("data-stream", "open");
    });
    source.addEventListener("log", function (ev) {
      var line = JSON.parse(ev.data);
      if (line.seq <= lastSeq) {
        return; // a replay after a reconnect
      }
      appendLine(line);
      lastSeq = line.seq;
      root.setAttribute("data-last-seq", String(lastSeq));
    });
    source.addEventListener("progress", function (ev) {
      updateProgress(JSON.parse(ev.data));
    });
    source.addEventListener("status", function (ev) {
      var st = JSON.parse(ev.data);
      updateStatus(root, st);
      if (TERMINAL[st.status]) {
        source.close();
      }
    });
    // On an error the browser reconnects by itself, sending Last-Event-ID.
  }

  // ---- presence badges ---------------------------------------------------

  function followPresence() {
    if (!document.querySelector("[data-presence]") || typeof EventSource === "undefined") {
      return;
    }
    var source = new EventSource("/ui/events");
    source.addEventListener("open", function () {
      document.body.setAttribute("data-live", "open");
    });
    source.addEventListener("host", function (ev) {
      var h = JSON.parse(ev.data);
      var online = h.status === "online";
      var changed = false;
      document.querySelectorAll("[data-presence]").forEach(function (el) {
        if (el.getAttribute("data-presence") !== h.host_id) {
          return;
        }
        var was = el.classList.contains("badge-online");
        if (was !== online) {
          changed = true;
        }
        el.className = "badge badge-" + h.status;
        el.textContent = h.status;
      });
      var on = document.getElementById("hosts-online");
      var off = document.getElementById("hosts-offline");
      if (changed && on && off) {
        on.textContent = String(Number(on.textContent) + (online ? 1 : -1));
        off.textContent = String(Number(off.textContent) + (online ? -1 : 1));
      }
    });
  }

  // For page scripts loaded after this one (browse.js).
  // (logLine also for the browser test, which checks it against
  // log_cases.json like the server's rules.)
  window.RM = { api: api, flash: flash, logLine: logLine };

  function init() {
    var job = document.getElementById("job-page");
    if (job) {
      followJob(job);
    }
    followPresence();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
