/* Latch: live updates, plus the few page behaviours htmx does not give us.
 * Runs after htmx + ws/sse extensions (all `defer`) under `script-src 'self'`.
 * The server pushes HTML whose top-level elements carry `hx-swap-oob`; the
 * extensions swap it. This file owns the connection and the ONLY reconnect
 * loop. Left alone, both extensions reconnect by themselves (ws: on close
 * 1006/1011/1012/1013 while its element is in the page; sse: EventSource's
 * retry plus the extension's): two loops, stale last_event_ids. So we create
 * the sockets (htmx.createWebSocket / createEventSource), our listeners run
 * first, and on failure they remove the sink element before the extension's
 * handler runs; both extensions stand down once their element is gone. */
(function () {
  'use strict';
  var htmx = window.htmx;
  if (!htmx) return;

  // CSP: htmx would inject an inline <style> (app.css has its indicator
  // rules) and eval hx-on / trigger filters (blocked anyway).
  htmx.config.includeIndicatorStyles = false;
  htmx.config.allowEval = false;
  // Belt and braces: should the ws extension still schedule a reconnect, it
  // fires in ~25 days. live.js reconnects, nobody else.
  htmx.config.wsReconnectDelay = function () { return 2147483647; };

  // The cap is low: a page that waits 14 s after the server is back shows
  // stale locks to a person who is about to act on them.
  var BASE_MS = 500, CAP_MS = 5000, WS_OPEN_TIMEOUT_MS = 3000;
  var SSE_EVENTS = 'created,locked,unlocked,checked_in,overridden,deleted,queued,dequeued,reserved,released,expired,moved,edited,inbox,refresh,presence,resync,message';
  var LABELS = { off: 'Off', connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…' };
  var NAMES = { ws: 'WebSocket', sse: 'Server-Sent Events' };

  var forced = new URLSearchParams(location.search).get('transport');
  if (forced !== 'ws' && forced !== 'sse') forced = null;

  var conn = null;                // current attempt: {kind, sink, raw, opened, timer}
  var failures = 0;               // consecutive failures, drives the backoff
  var retryTimer = 0;
  var wsWorked = false;           // a WebSocket opened in this page: keep preferring it
  var sseOnly = forced === 'sse'; // WS failed (or forced off): stay on SSE
  var stopped = false;            // page leaving or session over

  // For tests. lastSeq is read from the DOM, so it is always current.
  var TAB = (function () {
    var b = new Uint8Array(12), s = '';
    crypto.getRandomValues(b);
    b.forEach(function (x) { s += (x < 16 ? '0' : '') + x.toString(16); });
    return s;
  })();
  var live = window.latchLive = { state: 'off', transport: null, get lastSeq() { return readSeq(); } };

  // The server renders #live-seq and every live message re-sends it OOB:
  // the DOM is the one record of "what have I seen".
  function readSeq() {
    var el = document.getElementById('live-seq'), n = el ? parseInt(el.dataset.seq, 10) : NaN;
    return n >= 0 ? n : null;
  }

  function setState(state, note) {
    live.state = state;
    var el = document.getElementById('live-status');
    if (!el) return;
    el.dataset.state = state;
    if (live.transport) el.dataset.transport = live.transport;
    // Only a change: #live-status is a status region, read out on each change.
    if (el.textContent !== LABELS[state]) el.textContent = LABELS[state];
    el.title = note || (state === 'live' ? 'Live updates over ' + NAMES[live.transport] : LABELS[state]);
    var retry = document.getElementById('live-retry');
    if (retry) retry.hidden = state !== 'reconnecting';
  }

  function connect() {
    clearTimeout(retryTimer); retryTimer = 0; live.retryIn = 0;
    teardown();
    if (stopped) return;
    var kind = sseOnly ? 'sse' : 'ws';
    var seq = readSeq(); // re-read every time: messages keep moving it
    // The tab's name ties what it views to its connection (presence).
    var q = '?tab=' + TAB + (seq === null ? '' : '&last_event_id=' + seq);
    var sink = document.createElement('div');
    var c = conn = { kind: kind, sink: sink, raw: null, opened: false, timer: 0 };
    live.transport = kind;
    sink.id = 'live-sink'; sink.hidden = true;
    sink.setAttribute('hx-ext', kind);
    if (kind === 'ws') {
      sink.setAttribute('ws-connect', '/ws' + q);
      // A proxy that strips Upgrade can leave the socket hanging: give up at 3 s.
      c.timer = setTimeout(function () { if (!c.opened) failed(c, 0); }, WS_OPEN_TIMEOUT_MS);
    } else {
      sink.setAttribute('sse-connect', '/events' + q);
      sink.setAttribute('sse-swap', SSE_EVENTS);
      // The sse extension runs htmx's full swap: every hx-swap-oob element
      // is applied, then "none" skips the main swap into the sink.
      sink.setAttribute('hx-swap', 'none');
    }
    setState(live.state === 'live' || live.state === 'reconnecting' ? 'reconnecting' : 'connecting');
    document.body.appendChild(sink);
    htmx.process(sink); // synchronously calls our factories below
  }

  // Drop the current attempt; removing the sink is what stops the extensions.
  function teardown() {
    var c = conn;
    if (!c) return;
    conn = null;
    clearTimeout(c.timer);
    c.sink.remove();
    try { if (c.raw) c.raw.close(); } catch (e) { /* already closed */ }
  }

  function opened(c) {
    if (conn !== c) return;
    c.opened = true; failures = 0;
    clearTimeout(c.timer);
    if (c.kind === 'ws') wsWorked = true;
    setState('live');
    // The server forgot what this tab views when its last connection ended.
    if (viewing !== null) tellViewing(viewing);
  }

  function failed(c, code) {
    if (conn !== c) return; // a stale socket from an earlier attempt
    teardown();
    if (stopped) return;
    // The first WebSocket never opened: SSE for the rest of this page, now.
    if (c.kind === 'ws' && !c.opened && !forced && !wsWorked) { sseOnly = true; return connect(); }
    if (code === 1012) return schedule(250 + Math.random() * 750); // server restart
    failures += 1;
    if (failures >= 2) checkSession();
    // Full jitter: uniform in [0, min(cap, base * 2^n)].
    schedule(Math.random() * Math.min(CAP_MS, BASE_MS * Math.pow(2, failures)));
  }

  function schedule(ms) {
    setState('reconnecting', 'Connection lost; retrying in ' + Math.max(1, Math.round(ms / 1000)) + ' s');
    live.retryIn = ms;
    retryTimer = setTimeout(connect, ms);
  }

  // Neither EventSource nor a failed WebSocket shows the HTTP status, so after
  // repeated failures ask plainly: is the server up, and is our session good?
  function checkSession() {
    fetch('/healthz', { cache: 'no-store' }).then(function (r) {
      if (!r.ok) return; // down or restarting: keep backing off
      // /api/me is the smallest answer that needs a session: 401 without one.
      return fetch('/api/me', { credentials: 'same-origin', cache: 'no-store' })
        .then(function (r) { if (r.status === 401) goLogin(); });
    }).catch(function () { /* offline: keep backing off */ });
  }

  // Says why, and comes back here after signing in (the server checks
  // `next` is a page of its own), with any typed drafts still kept.
  function goLogin() {
    stop();
    var here = location.pathname + location.search;
    location.assign('/login?ended=1' + (here === '/' ? '' : '&next=' + encodeURIComponent(here)));
  }
  function stop() { stopped = true; clearTimeout(retryTimer); teardown(); }

  // Listeners added here fire before the extension's onclose/onerror.
  htmx.createWebSocket = function (url) {
    var c = conn, ws = new WebSocket(url);
    ws.binaryType = htmx.config.wsBinaryType;
    if (!c || c.kind !== 'ws' || c.raw) { ws.close(); return ws; } // not ours: refuse
    c.raw = ws;
    ws.addEventListener('open', function () { opened(c); });
    // The close that follows says what happened and we act on it; the
    // extension's onerror would only log "[object Event]" for every retry
    // while the server is down.
    ws.addEventListener('error', function (e) { e.stopImmediatePropagation(); });
    ws.addEventListener('close', function (e) {
      if (conn !== c) return;
      if (e.code === 4001) return goLogin(); // the session was ended
      failed(c, e.code);
    });
    return ws;
  };
  htmx.createEventSource = function (url) {
    var c = conn, es = new EventSource(url, { withCredentials: true });
    if (!c || c.kind !== 'sse' || c.raw) { es.close(); return es; }
    c.raw = es;
    es.addEventListener('open', function () { opened(c); });
    // Close at once so the browser's own retry (no backoff, old Last-Event-ID)
    // never runs; we come back with ?last_event_id from the DOM.
    es.addEventListener('error', function () { es.close(); failed(c, 0); });
    return es;
  };

  function start() {
    if (document.body.dataset.live !== 'on') return;
    addRetry();
    stopped = false;
    connect();
  }
  // Down, and there is reason to think it is back (the network returned, the
  // person looks at the tab again): try now, with the backoff started over.
  function reconnectNow() {
    if (stopped || document.body.dataset.live !== 'on' || (conn && conn.opened)) return;
    failures = 0;
    connect();
  }
  window.addEventListener('online', reconnectNow);
  document.addEventListener('visibilitychange', function () { if (!document.hidden) reconnectNow(); });
  // "Retry now" beside the indicator while reconnecting: one attempt at once
  // (the backoff keeps counting, so a person cannot hammer a server that is down).
  function addRetry() {
    var status = document.getElementById('live-status');
    if (!status || document.getElementById('live-retry')) return;
    var b = document.createElement('button');
    b.type = 'button'; b.id = 'live-retry'; b.className = 'btn quiet live-retry';
    b.textContent = 'Retry now'; b.hidden = true;
    b.addEventListener('click', function () { if (!stopped && !(conn && conn.opened)) connect(); });
    status.insertAdjacentElement('afterend', b);
  }
  window.addEventListener('pagehide', stop);
  window.addEventListener('pageshow', function (e) { if (e.persisted) start(); }); // back/forward cache

  /* ---- Relative times ("5 min ago") tick: the server renders them as of
   * the page's load, so without this "just now" lasts the whole shift. Same
   * words as `ago` in src/http/views/mod.rs. ---- */
  function ago(secs) {
    if (secs < 45) return 'just now';
    if (secs < 90) return 'a minute ago';
    if (secs < 3570) return Math.floor((secs + 30) / 60) + ' min ago';
    if (secs < 5400) return 'an hour ago';
    if (secs < 86400) return Math.floor((secs + 1800) / 3600) + ' h ago';
    if (secs < 172800) return 'yesterday';
    return Math.floor(secs / 86400) + ' days ago';
  }
  function refreshTimes() {
    var now = Date.now();
    document.querySelectorAll('time[data-relative][datetime]').forEach(function (t) {
      var at = Date.parse(t.getAttribute('datetime'));
      if (isNaN(at)) return;
      var words = ago(Math.max(0, Math.floor((now - at) / 1000)));
      if (t.textContent !== words) t.textContent = words;
    });
  }
  live.refreshTimes = refreshTimes;
  setInterval(refreshTimes, 30000);
  document.addEventListener('visibilitychange', function () { if (!document.hidden) refreshTimes(); });

  /* ---- Toasts: fade after 6 s, or on click. ---- */
  function armToast(t) {
    if (!(t instanceof Element) || !t.classList.contains('toast') || t.dataset.armed) return;
    t.dataset.armed = '1';
    // A refusal stays until it is clicked away or the person acts again:
    // the reader decides when they have read it. News fades after 6 s,
    // though not while the pointer rests on it.
    var timer = null, error = t.classList.contains('toast-error');
    function arm() { if (!error) timer = setTimeout(dismiss, 6000); }
    t.title = 'Click to dismiss';
    t.addEventListener('click', dismiss);
    // More joined this toast (a burst): it stays its full time from now.
    t.addEventListener('latch:dismiss', dismiss);
    t.addEventListener('latch:grew', function () { clearTimeout(timer); if (!t.matches(':hover')) arm(); });
    t.addEventListener('mouseenter', function () { clearTimeout(timer); });
    t.addEventListener('mouseleave', function () { clearTimeout(timer); arm(); });
    arm();
    function dismiss() {
      clearTimeout(timer);
      t.classList.add('toast-leaving');             // CSS fades it
      setTimeout(function () { t.remove(); }, 250); // no transitionend under reduced motion
    }
  }
  /* A colleague's burst (ten uploads) is one toast that counts, not ten that
   * cover the page; at most MAX_TOASTS show, the oldest news leaving first.
   * A refusal (role=alert) is never merged nor pushed out. */
  var BURST_MS = 2000, MAX_TOASTS = 3;
  function isError(t) { return t.classList.contains('toast-error') || t.getAttribute('role') === 'alert'; }
  function shown(box) {
    return Array.prototype.filter.call(box.querySelectorAll('.toast'), function (t) { return !t.classList.contains('toast-leaving'); });
  }
  function coalesce(t, box) {
    var actor = t.dataset.actor, now = Date.now();
    if (!actor || isError(t)) return false;
    var into = shown(box).filter(function (o) {
      return o !== t && o.dataset.actor === actor && !isError(o) && now - (+o.dataset.at || 0) < BURST_MS;
    }).pop();
    if (!into) { t.dataset.at = now; return false; }
    var count = (+into.dataset.count || 1) + 1, latest = t.textContent.trim();
    t.remove();
    into.dataset.count = count; into.dataset.at = now;
    into.textContent = '';
    var head = document.createElement('strong'), last = document.createElement('span');
    head.className = 'toast-count';
    head.textContent = count + ' changes by ' + (t.dataset.actorName || actor);
    last.className = 'toast-latest';
    last.textContent = 'Latest: ' + latest;
    into.appendChild(head); into.appendChild(last);
    into.dispatchEvent(new CustomEvent('latch:grew'));
    return true;
  }
  function capToasts(box) {
    var news = shown(box).filter(function (t) { return !isError(t); });
    var extra = shown(box).length - MAX_TOASTS;
    // Not .click(): that would bubble and close an open popover.
    for (var i = 0; i < extra && i < news.length; i++) news[i].dispatchEvent(new CustomEvent('latch:dismiss'));
  }
  function toastAdded(t) {
    var box = document.getElementById('toasts');
    if (!(t instanceof Element) || !t.classList.contains('toast') || !box) return;
    if (t.dataset.armed || coalesce(t, box)) return;
    armToast(t);
    capToasts(box);
  }

  function toast(text) {
    var box = document.getElementById('toasts'), t = document.createElement('div');
    if (!box) return;
    t.className = 'toast toast-error';
    t.setAttribute('role', 'alert');
    t.textContent = text;
    box.appendChild(t);
  }

  /* ---- Live toasts about my own actions: this tab (if it acted) already
   * shows the action's reply, so the broadcast copy would say it twice. ---- */
  document.addEventListener('htmx:oobBeforeSwap', function (e) {
    var d = e.detail, me = document.body.dataset.user, f = d && d.fragment;
    if (!me || !f || !f.querySelectorAll || !d.target || d.target.id !== 'toasts') return;
    f.querySelectorAll('.toast[data-actor]').forEach(function (t) {
      if (t.dataset.actor === me) t.remove();
    });
  });

  /* ---- Desktop notifications: only once the person turned them on (the
   * account page asks the browser's permission when they click Enable);
   * the server sends #desktop-notify with each new notification. ---- */
  var DESKTOP_KEY = 'latch-desktop';
  function desktopState() {
    if (!('Notification' in window)) return 'unsupported';
    if (Notification.permission === 'denied') return 'blocked';
    var on = false;
    try { on = localStorage.getItem(DESKTOP_KEY) === 'on'; } catch (e) { /* storage off */ }
    return on && Notification.permission === 'granted' ? 'on' : 'off';
  }
  document.addEventListener('htmx:oobAfterSwap', function () {
    var t = document.getElementById('desktop-notify');
    if (!t || !t.dataset.id || t.dataset.shown || desktopState() !== 'on') return;
    t.dataset.shown = '1';
    // One per notification across tabs: the same tag replaces, not stacks.
    var n = new Notification(t.dataset.title, { body: t.dataset.body, tag: 'latch-' + t.dataset.id });
    var href = t.dataset.href;
    n.onclick = function () { window.focus(); if (href) location.href = href; n.close(); };
  });
  var DESKTOP_TEXT = {
    unsupported: 'This browser cannot show desktop notifications.',
    blocked: 'This browser blocks notifications from Latch: allow them in the site settings (the icon left of the address), then click Enable.',
    on: 'On: new notifications also appear on your desktop while Latch is open in a tab.',
    off: 'Off: notifications appear in Latch only (the bell and a toast).'
  };
  function showDesktop() {
    var state = desktopState(), text = document.getElementById('desktop-state');
    var on = document.getElementById('desktop-enable'), off = document.getElementById('desktop-disable');
    if (!text) return;
    text.textContent = DESKTOP_TEXT[state];
    document.getElementById('desktop-notifications').dataset.state = state;
    on.hidden = state === 'on' || state === 'unsupported';
    off.hidden = state !== 'on';
  }
  document.addEventListener('click', function (e) {
    var b = e.target.closest && e.target.closest('#desktop-enable, #desktop-disable');
    if (!b) return;
    if (b.id === 'desktop-disable') {
      try { localStorage.setItem(DESKTOP_KEY, 'off'); } catch (err) { /* storage off */ }
      showDesktop();
      return;
    }
    if (!('Notification' in window)) { showDesktop(); return; }
    // Asked here, on the person's click, never on page load.
    Notification.requestPermission().then(function (p) {
      if (p === 'granted') {
        try { localStorage.setItem(DESKTOP_KEY, 'on'); } catch (err) { /* storage off */ }
      }
      showDesktop();
    });
  });

  /* ---- A card someone is using: a live update waits. Swapping a card
   * while its Check in / Ask to release popover is open, or while its
   * comment field has focus, would throw away what the person typed (and
   * the file they picked). The newest version of the card waits until the
   * popover closes or focus leaves the card; the person's own action on
   * the card always swaps at once. ---- */
  var waitingCards = {};
  function inUse(card) {
    if (card.dataset.acting) return false;
    if (card.querySelector('details.popover[open]')) return true;
    var a = document.activeElement;
    return !!a && card.contains(a) && a.matches('input[type=text], textarea');
  }
  function typedValues(card) {
    var out = [];
    card.querySelectorAll('input[type=text], textarea').forEach(function (f) {
      if (f.value && f.form) out.push([f.form.getAttribute('action'), f.name, f.value]);
    });
    return out;
  }
  function flushCard(card) {
    var next = card && waitingCards[card.id];
    if (!next || inUse(card)) return;
    delete waitingCards[card.id];
    var typed = typedValues(card);
    card.replaceWith(next);
    htmx.process(next);
    typed.forEach(function (t) {
      next.querySelectorAll('form').forEach(function (f) {
        if (f.getAttribute('action') !== t[0] || !f.elements[t[1]]) return;
        var field = f.elements[t[1]];
        if (field.matches && field.matches('input[type=text], textarea')) field.value = t[2];
      });
    });
  }
  document.addEventListener('htmx:oobBeforeSwap', function (e) {
    var d = e.detail, t = d && d.target;
    if (!t || !t.matches || !t.matches('article.card') || !inUse(t)) return;
    // Only a replacement waits; a deleted card goes at once.
    if (!(d.fragment instanceof DocumentFragment)) return;
    var next = d.fragment.firstElementChild;
    if (!next || !next.matches || !next.matches('article.card')) return;
    waitingCards[t.id] = next.cloneNode(true);
    d.shouldSwap = false;
  });
  document.addEventListener('htmx:beforeRequest', function (e) {
    var card = e.target.closest && e.target.closest('article.card');
    if (card) card.dataset.acting = '1';
  });
  document.addEventListener('htmx:afterRequest', function (e) {
    var card = e.target.closest && e.target.closest('article.card');
    if (card) { delete card.dataset.acting; flushCard(card); }
  });
  document.addEventListener('toggle', function (e) {
    if (e.target.open) return;
    var card = e.target.closest && e.target.closest('article.card');
    if (card) setTimeout(function () { flushCard(card); }, 0);
  }, true);
  document.addEventListener('focusout', function (e) {
    var card = e.target.closest && e.target.closest('article.card');
    if (card) setTimeout(function () { flushCard(card); }, 0);
  });

  /* ---- The side panel (#panel: history, preview, compare) is a modal
   * dialog (role and name in the layout): opening it moves focus to its
   * heading, Tab cycles inside it, Esc or × closes it and focus goes back
   * to the button that opened it. ---- */
  // What opened the drawer: the element, and how to find its successor if
  // a live update replaced the card meanwhile.
  var opener = null;
  function panelOpen() {
    var p = document.getElementById('panel');
    return !!(p && p.firstElementChild);
  }
  function rememberOpener(el) {
    var card = el.closest && el.closest('article.card');
    opener = { el: el, card: card && card.id, href: el.getAttribute('href') };
  }
  function restoreFocus() {
    var o = opener, el = null;
    opener = null;
    if (o && o.el.isConnected) el = o.el;
    else if (o && o.card && o.href) {
      var card = document.getElementById(o.card);
      el = card && Array.prototype.find.call(card.querySelectorAll('a[href]'), function (a) {
        return a.getAttribute('href') === o.href;
      });
    }
    if (!el) el = document.getElementById('main');
    if (el) el.focus();
  }
  function closePanel() {
    var p = document.getElementById('panel');
    if (!p || !p.firstChild) return false;
    p.replaceChildren();
    restoreFocus();
    return true;
  }
  document.addEventListener('click', function (e) {
    if (e.target.closest && e.target.closest('[data-close-panel]')) closePanel();
  });
  document.addEventListener('htmx:beforeRequest', function (e) {
    var t = e.detail.target, elt = e.detail.elt;
    // A link inside the drawer keeps the first opener; one outside (another
    // card's History while it is open) becomes the new one.
    if (t && t.id === 'panel' && elt && !t.contains(elt)) rememberOpener(elt);
  });
  document.addEventListener('htmx:afterSwap', function (e) {
    if (!e.detail.target || e.detail.target.id !== 'panel' || !panelOpen()) return;
    var h = document.getElementById('panel-title');
    if (h) h.focus();
  });
  function focusables(root) {
    return Array.prototype.filter.call(
      root.querySelectorAll('a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), select, textarea, summary, [tabindex="0"]'),
      function (el) { return el.getClientRects().length > 0; });
  }
  document.addEventListener('keydown', function (e) {
    if (e.key !== 'Tab' || !panelOpen()) return;
    var p = document.getElementById('panel'), f = focusables(p);
    if (f.length === 0) return;
    var first = f[0], last = f[f.length - 1], a = document.activeElement;
    if (!p.contains(a)) { e.preventDefault(); first.focus(); }
    else if (e.shiftKey && (a === first || a.id === 'panel-title')) { e.preventDefault(); last.focus(); }
    else if (!e.shiftKey && a === last) { e.preventDefault(); first.focus(); }
  });

  /* ---- The skip link: focus lands on its target (a list is not focusable
   * by itself, so give it tabindex=-1 first). ---- */
  document.addEventListener('click', function (e) {
    var a = e.target.closest && e.target.closest('a.skip-link');
    if (!a) return;
    var t = document.getElementById(a.getAttribute('href').slice(1)) || document.getElementById('main');
    if (!t) return;
    e.preventDefault();
    if (!t.hasAttribute('tabindex')) t.setAttribute('tabindex', '-1');
    t.focus();
    t.scrollIntoView({ block: 'start' });
  });

  /* ---- Presence: tell the server whose history this tab shows (the
   * drawer), so cards can say "carol is viewing". One POST per change; the
   * server keeps it only while this tab's live connection is open. ---- */
  var viewing = null;
  function csrfToken() {
    var h = document.body.getAttribute('hx-headers');
    try { return JSON.parse(h || '{}')['X-CSRF-Token'] || ''; } catch (e) { return ''; /* no token: refused */ }
  }
  function tellViewing(id) {
    var csrf = csrfToken();
    fetch('/live/viewing', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'X-CSRF-Token': csrf, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'tab=' + TAB + '&file=' + (id === null ? '' : id)
    }).catch(function () { /* offline: re-sent when the connection opens */ });
  }
  function panelChanged() {
    var p = document.getElementById('panel'), h = p && p.querySelector('[data-viewing-file]');
    var id = h ? h.dataset.viewingFile : null;
    if (id === viewing) return;
    viewing = id;
    if (conn && conn.opened) tellViewing(id);
  }
  // A presence update lists every file someone views: lines for others
  // went stale while this page was not listening, and are cleared.
  document.addEventListener('htmx:oobAfterSwap', function () {
    var p = document.getElementById('presence');
    if (!p || p.dataset.synced === '1') return;
    p.dataset.synced = '1';
    var seen = ' ' + (p.dataset.viewed || '') + ' ';
    document.querySelectorAll('p.viewing:not([hidden])').forEach(function (v) {
      if (seen.indexOf(' ' + v.dataset.file + ' ') < 0) { v.hidden = true; v.textContent = ''; }
    });
  });

  /* ---- Popovers (<details class="popover">): outside click / Esc close. ---- */
  function eachOpen(fn) { document.querySelectorAll('details.popover[open]').forEach(fn); }
  document.addEventListener('click', function (e) {
    eachOpen(function (d) { if (!d.contains(e.target)) d.open = false; });
  });
  document.addEventListener('keydown', function (e) {
    if (e.key !== 'Escape') return;
    var any = false;
    eachOpen(function (d) {
      var s = d.contains(document.activeElement) && d.querySelector('summary');
      d.open = false; any = true;
      if (s) s.focus();
    });
    // Innermost first: a popover, then the panel, then the selection.
    if (!any && !closePanel()) clearSelection();
  });
  // 'toggle' does not bubble, hence capture. Opening focuses the first field.
  document.addEventListener('toggle', function (e) {
    var d = e.target, f = d.open && d.matches('details.popover') &&
      d.querySelector('input:not([type=hidden]), textarea, select');
    if (f) f.focus();
  }, true);

  /* ---- Forms: a popover's form closes it on success. ---- */
  // A new attempt supersedes the refusals shown before it (if it fails too,
  // it brings its own). On the way out, not on the answer: a live update
  // may replace the form first, and a detached form's events reach nobody.
  document.addEventListener('htmx:beforeRequest', function (e) {
    var verb = e.detail.requestConfig && e.detail.requestConfig.verb;
    if (verb && verb !== 'get') document.querySelectorAll('#toasts .toast-error').forEach(function (t) { t.click(); });
  });
  document.addEventListener('htmx:afterRequest', function (e) {
    var d = e.target.closest && e.target.closest('details.popover'), x = e.detail.xhr;
    // Not detail.successful: the htmx-config meta marks 4xx "error": false
    // (so their toasts swap in), which makes a refused request "successful".
    if (!d || !x || x.status < 200 || x.status >= 300) return;
    // Focus was on the submit button, which closing hides: it goes back to
    // the popover's button, not to the top of the page.
    var a = document.activeElement, had = !a || a === document.body || d.contains(a);
    d.open = false;
    if (e.target.tagName === 'FORM') e.target.reset();
    var s = had && d.isConnected && d.querySelector('summary');
    if (s) s.focus();
  });

  /* ---- htmx errors. htmx swaps nothing for 4xx/5xx by default. For 4xx
   * HTML, let the server's OOB toast (its error sentence) through, but swap
   * nothing into the target unless the server asks with HX-Reswap. ---- */
  document.addEventListener('htmx:beforeSwap', function (e) {
    var d = e.detail, s = d.xhr.status;
    if (s < 400) return;
    if (s === 401) { d.shouldSwap = false; return goLogin(); }
    var body = String(d.serverResponse || '');
    var reswap = d.xhr.getResponseHeader('HX-Reswap');
    if (/html/.test(d.xhr.getResponseHeader('Content-Type') || '') && s < 500) {
      d.shouldSwap = true;
      if (!reswap) d.swapOverride = 'none';
      if (reswap || body.indexOf('hx-swap-oob') >= 0) return; // the server shows it
    }
    var text = body.length < 500 ? new DOMParser().parseFromString(body, 'text/html').body.textContent.trim() : '';
    toast(text || 'That did not work (HTTP ' + s + ').');
  });
  document.addEventListener('htmx:sendError', function () {
    toast('Could not reach the server. Check your connection and try again.');
  });

  /* ---- An OOB card or folder with no target (a new file in a folder the
   * list does not show yet, a card hidden by the filters): re-fetch the list
   * once per burst, with the current filters. ---- */
  // One person's burst (a script uploading file after file, many moves)
  // must not make every open browser re-render the whole list per event:
  // at most one re-fetch in flight, and one per REFRESH_GAP_MS; what
  // arrives meanwhile is covered by one more at the end.
  var REFRESH_GAP_MS = 1000;
  var refreshTimer = 0, refreshBusy = false, refreshAgain = false, lastRefresh = -Infinity;
  live.refreshGap = REFRESH_GAP_MS;
  function isFiltered() {
    var form = document.getElementById('filters');
    return !!form && ((form.elements.q && form.elements.q.value.trim() !== '') ||
      (form.elements.state && ['', 'all'].indexOf(form.elements.state.value) < 0));
  }
  function refreshList() {
    if (!document.getElementById('file-list')) return;
    if (refreshBusy) { refreshAgain = true; return; }
    if (refreshTimer) return;
    refreshTimer = setTimeout(function () {
      refreshTimer = 0;
      if (!document.getElementById('file-list')) return;
      refreshBusy = true;
      lastRefresh = performance.now();
      var f = document.getElementById('filters');
      var q = f ? new URLSearchParams(new FormData(f)).toString() : '';
      var done = function () {
        refreshBusy = false;
        if (refreshAgain) { refreshAgain = false; refreshList(); }
      };
      var p = htmx.ajax('GET', '/files?' + q, { target: '#file-list', swap: 'outerHTML' });
      if (p && p.then) p.then(done, done); else done();
    }, Math.max(50, lastRefresh + REFRESH_GAP_MS - performance.now()));
  }
  document.addEventListener('htmx:oobErrorNoTarget', function (e) {
    var el = e.detail.content;
    if (!el || !el.matches) return;
    if (!el.matches('.card, .folder') && !el.querySelector('.card, .folder')) return;
    // Refresh for a new file whose folder is not on the page, or when the view
    // is filtered (the changed card may match now). A card that is missing only
    // because the list stops at its first 500 needs nothing: refreshing there
    // would cost every browser a request for every event.
    var isInsert = el.matches('.card-insert') || !!el.querySelector('.card-insert');
    if (isInsert || isFiltered()) refreshList();
  });
  // A card that was swapped in place may no longer match the filters (a
  // "Checked out" view whose file was just checked in): let the server decide.
  document.addEventListener('htmx:oobAfterSwap', function (e) {
    var t = e.detail && e.detail.target;
    if (t && t.matches && t.matches('article.card') && isFiltered()) refreshList();
  });

  /* ---- The list's views. Cards | Table is remembered by the server; here
   * the switch and the filter form only follow the list that arrived.
   * Folders collapse and stay so (this browser remembers which), live
   * inserts still land inside a closed one. "My check-outs" keeps its
   * count. A flat list sorted by last change moves a card that changed to
   * the top; other sorts keep a changed card in place until a reload. ---- */
  var COLLAPSED = 'latch.collapsedFolders';
  function collapsedSet() {
    try { return new Set(JSON.parse(localStorage.getItem(COLLAPSED) || '[]')); } catch (_) { return new Set(); }
  }
  document.addEventListener('toggle', function (e) {
    var d = e.target, s = d.matches && d.matches('details.folder-box') && d.closest('section.folder');
    if (!s) return;
    var set = collapsedSet();
    if (d.open) set.delete(s.dataset.folder); else set.add(s.dataset.folder);
    try { localStorage.setItem(COLLAPSED, JSON.stringify(Array.from(set))); } catch (_) { /* storage off: this page only */ }
  }, true);
  document.addEventListener('click', function (e) {
    var b = e.target.closest && e.target.closest('[data-folders]');
    if (!b) return;
    var open = b.dataset.folders === 'open';
    document.querySelectorAll('details.folder-box').forEach(function (d) { d.open = open; });
  });
  function listChanged() {
    var list = document.getElementById('file-list');
    if (!list) return;
    // A full list from the live stream after a gap has no filters: fetch
    // it again with the page's own.
    if (list.dataset.resync) { delete list.dataset.resync; refreshList(); }
    var fresh = list.querySelectorAll('details.folder-box:not([data-seen])');
    if (fresh.length) {
      var set = collapsedSet();
      fresh.forEach(function (d) {
        d.dataset.seen = '1';
        if (set.has(d.closest('section.folder').dataset.folder)) d.open = false;
      });
    }
    list.querySelectorAll('section.folder').forEach(function (s) {
      var n = s.querySelectorAll('article.card').length;
      setText(s.querySelector('.folder-count'), n + (n === 1 ? ' file' : ' files'));
    });
    var view = list.dataset.view, field = document.getElementById('view-field');
    if (field && view && field.value !== view) field.value = view;
    document.querySelectorAll('#view-switch button[name=set_view]').forEach(function (b) {
      var on = String(b.value === view);
      if (b.getAttribute('aria-pressed') !== on) b.setAttribute('aria-pressed', on);
    });
    // The server counted all I hold; cards on the page that turned mine
    // (or stopped being) since it did move the count.
    var me = document.body.dataset.user;
    var mine = me ? list.querySelectorAll('article.card[data-locked-by="' + CSS.escape(me) + '"]').length : 0;
    if (list.dataset.heldShown === undefined) list.dataset.heldShown = String(mine);
    var held = (parseInt(list.dataset.held, 10) || 0) + mine - parseInt(list.dataset.heldShown, 10);
    setText(document.querySelector('#my-checkouts .my-count'), String(Math.max(0, held)));
  }
  // Before the focus keeper below: moving the card after it refocused
  // would take the focus away again.
  document.addEventListener('htmx:oobAfterSwap', function (e) {
    var t = e.detail && e.detail.target, list = document.getElementById('file-list');
    if (!t || !t.id || !list || list.dataset.sort !== 'modified') return;
    var card = document.getElementById(t.id), box = document.getElementById('all-files');
    if (!card || !box || card.parentNode !== box) return;
    var first = box.firstElementChild;
    if (first && first !== card && Number(card.dataset.modified) > Number(first.dataset.modified)) box.insertBefore(card, first);
  });


  /* ---- Selection: the cards' checkboxes belong to the toolbar's
   * #selection form (form="selection"), so without JavaScript they post
   * with it. Here: a count, Clear / Esc, shift-click ranges, "Select all"
   * per folder, and ticks that survive a live swap of their card (the
   * server renders every card unticked; `selected` is the record). ---- */
  var selected = new Set(), lastTicked = null;
  function boxes() { return Array.prototype.slice.call(document.querySelectorAll('input[name=ids][form=selection]')); }
  function showSelection() {
    var form = document.getElementById('selection');
    if (!form) return;
    var present = boxes(), n = 0, seen = new Set();
    present.forEach(function (b) {
      b.checked = selected.has(b.value);
      if (b.checked && !seen.has(b.value)) { seen.add(b.value); n += 1; }
    });
    // A card that left the page (deleted, filtered away) leaves the selection.
    selected = seen;
    form.dataset.count = String(n);
    // Only real changes: this runs from a MutationObserver, and rewriting
    // equal text would be a mutation of its own.
    setText(form.querySelector('.selection-count'), n + ' selected');
    document.querySelectorAll('[data-select-folder]').forEach(function (btn) {
      var inside = folderBoxes(btn.dataset.selectFolder);
      var all = inside.length > 0 && inside.every(function (b) { return b.checked; });
      setText(btn, all ? 'Clear all' : 'Select all');
      btn.setAttribute('aria-label', (all ? 'Clear all in ' : 'Select all in ') + btn.dataset.selectFolder + '/');
    });
  }
  function setText(el, text) { if (el && el.textContent !== text) el.textContent = text; }
  function folderBoxes(folder) {
    var out = [];
    document.querySelectorAll('section.folder').forEach(function (s) {
      if (s.dataset.folder === folder) s.querySelectorAll('input[name=ids][form=selection]').forEach(function (b) { out.push(b); });
    });
    return out;
  }
  function clearSelection() {
    if (selected.size === 0) return false;
    selected.clear(); lastTicked = null;
    showSelection();
    return true;
  }
  document.addEventListener('click', function (e) {
    var b = e.target;
    if (b && b.matches && b.matches('input[name=ids][form=selection]')) {
      // Shift-click ticks (or unticks) every card between the last one and this, in page order.
      // By id, not element: a live swap may have replaced the last one's card.
      var all = boxes(), to = all.indexOf(b), from = -1;
      all.forEach(function (x, i) { if (x.value === lastTicked) from = i; });
      if (e.shiftKey && from >= 0 && to >= 0) {
        var lo = Math.min(from, to), hi = Math.max(from, to);
        for (var i = lo; i <= hi; i++) all[i].checked = b.checked;
      }
      lastTicked = b.value;
      all.forEach(function (x) { if (x.checked) selected.add(x.value); else selected.delete(x.value); });
      showSelection();
      return;
    }
    var folder = e.target.closest && e.target.closest('[data-select-folder]');
    if (folder) {
      var inside = folderBoxes(folder.dataset.selectFolder);
      var every = inside.every(function (x) { return x.checked; });
      inside.forEach(function (x) { if (every) selected.delete(x.value); else selected.add(x.value); });
      showSelection();
      return;
    }
    if (e.target.closest && e.target.closest('[data-clear-selection]')) {
      clearSelection();
      var first = boxes()[0];
      if (first) first.focus();
    }
  });
  // Done: a check-out or cancel of the selection empties it (a refusal keeps it).
  document.addEventListener('htmx:afterRequest', function (e) {
    var x = e.detail.xhr;
    if (e.target.id !== 'selection' || !x || x.status < 200 || x.status >= 300) return;
    // The bar hides with the focus in it: focus goes to the first card acted
    // on (and follows it through its live swap), not to the top of the page.
    // By the record: the reply's own cards swapped in unticked just now.
    var first = boxes().filter(function (b) { return selected.has(b.value); })[0];
    clearSelection();
    var c = document.getElementById('selection-comment');
    if (c) c.value = '';
    if (first) first.focus();
  });

  /* ---- Focus survives a live swap of its card: the same control in the
   * new card (by its name or words), else the card's tick box. Without
   * this, a keyboard user is sent to the top of the page whenever anyone
   * changes the file they are on. ---- */
  var refocus = null;
  var FOCUSABLE = 'a[href], button, summary, input:not([type=hidden]), textarea, select';
  function focusKey(el) {
    return { tag: el.tagName, name: el.getAttribute('name') || '', text: (el.textContent || '').trim() };
  }
  document.addEventListener('htmx:oobBeforeSwap', function (e) {
    var d = e.detail, t = d && d.target, a = document.activeElement;
    if (d.shouldSwap === false || !t || !t.matches || !t.matches('article.card') || !a || !t.contains(a)) return;
    refocus = { id: t.id, key: focusKey(a) };
  });
  // A refetched list (a colleague's move into a folder not shown yet, a
  // filter) replaces every card at once: the same keeper, by the card's id.
  document.addEventListener('htmx:beforeSwap', function (e) {
    var t = e.detail && e.detail.target, a = document.activeElement;
    if (!t || t.id !== 'file-list' || !a || !t.contains(a)) return;
    var card = a.closest('[id^="file-"]');
    if (card) refocus = { id: card.id, key: focusKey(a) };
  });
  document.addEventListener('htmx:afterSwap', function (e) {
    var t = e.detail && e.detail.target;
    if (refocus && t && (t.id === 'file-list' || !t.isConnected)) refocusCard();
  });
  document.addEventListener('htmx:oobAfterSwap', refocusCard);
  function refocusCard() {
    if (!refocus) return;
    var r = refocus, a = document.activeElement;
    if (a && a !== document.body && a.isConnected) { refocus = null; return; }
    var card = document.getElementById(r.id);
    if (!card) return; // a move: the card comes back in its new folder next
    refocus = null;
    var same = Array.prototype.filter.call(card.querySelectorAll(FOCUSABLE), function (el) {
      var k = focusKey(el);
      return k.tag === r.key.tag && k.name === r.key.name && (k.tag === 'INPUT' || k.tag === 'TEXTAREA' || k.text === r.key.text);
    })[0];
    // The Save button of a popover that closed on success: its summary.
    var closed = same && same.closest('details:not([open])');
    if (closed && closed.querySelector('summary') !== same) same = closed.querySelector('summary');
    var to = same || card.querySelector('input[name=ids]');
    if (to) to.focus();
  }
  // Any swap (a live card, a refreshed list, a card that waited) re-applies the ticks.
  var selectionQueued = false;
  function queueSelection() {
    if (selectionQueued) return;
    selectionQueued = true;
    Promise.resolve().then(function () { selectionQueued = false; showSelection(); listChanged(); makeToolbars(); });
  }

  /* ---- A card's buttons are one tab stop (a toolbar): Tab goes from a
   * card's tick box and comment to its actions and on to the next card;
   * the arrow keys, Home and End move among the actions. Without this a
   * keyboard user passes six to nine stops per card. The stop is the
   * action last used on that card. Popover contents stay in the Tab
   * order while open. ---- */
  var TOOL_ITEMS = ':scope > form > button, :scope > details > summary, :scope > a[href]';
  function toolItems(bar) {
    return Array.prototype.filter.call(bar.querySelectorAll(TOOL_ITEMS), function (el) {
      return !el.disabled && el.offsetParent !== null;
    });
  }
  function makeToolbars() {
    document.querySelectorAll('article.card .card-actions:not([data-roving])').forEach(function (bar) {
      var card = bar.closest('article.card'), items = bar.querySelectorAll(TOOL_ITEMS);
      if (!items.length) return;
      bar.dataset.roving = 'on';
      bar.setAttribute('role', 'toolbar');
      bar.setAttribute('aria-label', 'Actions for ' + (card.dataset.path || 'this file'));
      var active = document.activeElement, current = bar.contains(active) ? active : null;
      items.forEach(function (el) { el.tabIndex = -1; });
      (current && Array.prototype.indexOf.call(items, current) >= 0 ? current : items[0]).tabIndex = 0;
    });
  }
  document.addEventListener('focusin', function (e) {
    var bar = e.target.closest && e.target.closest('.card-actions[data-roving]');
    if (!bar || !e.target.matches(TOOL_ITEMS.replace(/:scope > /g, '.card-actions > '))) return;
    bar.querySelectorAll(TOOL_ITEMS).forEach(function (el) { el.tabIndex = el === e.target ? 0 : -1; });
  });
  document.addEventListener('keydown', function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    var bar = e.target.closest && e.target.closest('.card-actions[data-roving]');
    if (!bar) return;
    var items = toolItems(bar), i = items.indexOf(e.target), to = null;
    if (i < 0) return; // the comment field and popover contents keep their keys
    if (e.key === 'ArrowRight') to = items[(i + 1) % items.length];
    else if (e.key === 'ArrowLeft') to = items[(i - 1 + items.length) % items.length];
    else if (e.key === 'Home') to = items[0];
    else if (e.key === 'End') to = items[items.length - 1];
    if (!to) return;
    e.preventDefault();
    to.focus();
  });

  /* ---- Progress of uploads. A multipart htmx form (upload, check-in)
   * shows a bar inside itself; a bulk upload (the form, or files dropped on
   * the list) gets a line in #uploads with its bar and, at the end, the
   * server's sentence. ---- */
  function progressLine(where, text) {
    var line = document.createElement('div'), label = document.createElement('span'), bar = document.createElement('progress');
    line.className = 'upload-progress';
    bar.max = 100; bar.value = 0;
    label.className = 'upload-label';
    label.textContent = text;
    bar.setAttribute('aria-label', text);
    line.appendChild(label); line.appendChild(bar);
    where.appendChild(line);
    return {
      line: line,
      set: function (loaded, total) {
        if (!total) { bar.removeAttribute('value'); return; }
        var pct = Math.round(100 * loaded / total);
        bar.value = pct;
        label.textContent = text + ' — ' + pct + '%';
      },
      done: function (ok, sentence) {
        bar.remove();
        label.textContent = sentence;
        line.classList.add(ok ? 'upload-done' : 'upload-failed');
        if (!ok) line.setAttribute('role', 'alert');
        var close = document.createElement('button');
        close.type = 'button'; close.className = 'btn quiet'; close.textContent = '×';
        close.setAttribute('aria-label', 'Dismiss');
        close.addEventListener('click', function () { line.remove(); });
        line.appendChild(close);
        if (ok) setTimeout(function () { line.remove(); }, 8000);
      }
    };
  }
  function isMultipart(el) { return el && el.getAttribute && el.getAttribute('hx-encoding') === 'multipart/form-data'; }
  document.addEventListener('htmx:beforeRequest', function (e) {
    var f = e.target;
    if (!isMultipart(f)) return;
    var old = f.querySelector('.upload-progress');
    if (old) old.remove();
    var p = progressLine(f, 'Sending');
    var submit = f.querySelector('button[type=submit]');
    if (submit) f.insertBefore(p.line, submit);
    f._progress = p;
  });
  document.addEventListener('htmx:xhr:progress', function (e) {
    var p = e.target._progress, d = e.detail;
    if (p && d.lengthComputable) p.set(d.loaded, d.total);
  });
  document.addEventListener('htmx:afterRequest', function (e) {
    var f = e.target;
    if (!f || !f._progress) return;
    f._progress.line.remove();
    f._progress = null;
  });

  function uploadFiles(list, folder) {
    var box = document.getElementById('uploads');
    if (!box || list.length === 0) return;
    var tooLarge = dropTooLarge(list); // issue 12: not sent over the limit
    if (tooLarge) { toast(tooLarge); return; }
    var where = folder ? folder + '/' : 'the top';
    var what = list.length === 1 ? list[0].path : list.length + ' files';
    var p = progressLine(box, 'Uploading ' + what + ' to ' + where);
    var fd = new FormData();
    fd.append('folder', folder);
    list.forEach(function (f) { fd.append('file', f.file, f.path); });
    var x = new XMLHttpRequest();
    x.open('POST', '/files/bulk');
    x.setRequestHeader('X-CSRF-Token', csrfToken());
    x.setRequestHeader('HX-Request', 'true');
    x.upload.addEventListener('progress', function (e) { p.set(e.loaded, e.lengthComputable ? e.total : 0); });
    x.addEventListener('load', function () {
      if (x.status === 401) return goLogin();
      var doc = new DOMParser().parseFromString(x.responseText || '', 'text/html');
      var t = doc.querySelector('.toast');
      var sentence = (t ? t.textContent : doc.body.textContent).trim();
      var ok = x.status >= 200 && x.status < 300;
      p.done(ok, sentence || (ok ? 'Uploaded.' : 'The upload failed (HTTP ' + x.status + ').'));
    });
    x.addEventListener('error', function () { p.done(false, 'Could not reach the server. Check your connection and try again.'); });
    x.send(fd);
  }
  // The bulk form: each file under its path inside the chosen folder.
  document.addEventListener('submit', function (e) {
    var f = e.target;
    if (!f.matches || !f.matches('form[data-bulk]')) return;
    e.preventDefault();
    var list = [];
    f.querySelectorAll('input[type=file]').forEach(function (input) {
      Array.prototype.forEach.call(input.files, function (file) {
        list.push({ file: file, path: file.webkitRelativePath || file.name });
      });
    });
    if (list.length === 0) { toast('Choose some files or a folder first.'); return; }
    var fd = new FormData(f);
    var folder = String(fd.get('folder') || '').trim().replace(/^\/+|\/+$/g, '');
    uploadFiles(list, folder);
    var d = f.closest('details.popover');
    if (d) d.open = false;
    f.reset();
  });

  /* ---- Drop files or a folder anywhere on the list: they go into the
   * folder of the section they land on (or the top), in one commit. On the
   * check-in form they fill its file field instead. ---- */
  function hasFiles(e) {
    var t = e.dataTransfer && e.dataTransfer.types;
    return !!t && Array.prototype.indexOf.call(t, 'Files') >= 0;
  }
  function dropFolder(target) {
    var s = target.closest && target.closest('section.folder');
    return s ? s.dataset.folder || '' : '';
  }
  var dropMark = null;
  function markDrop(el) {
    if (dropMark === el) return;
    if (dropMark) dropMark.classList.remove('drop-here');
    dropMark = el;
    if (el) el.classList.add('drop-here');
  }
  function dropZone(target) {
    if (!document.getElementById('file-list')) return null;
    var form = target.closest && target.closest('form.drop-target');
    if (form) return form;
    return (target.closest && target.closest('section.folder')) || document.getElementById('file-list');
  }
  document.addEventListener('dragover', function (e) {
    if (!hasFiles(e) || (e.target.matches && e.target.matches('input[type=file]'))) return;
    var zone = dropZone(e.target);
    if (!zone) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
    markDrop(zone);
  });
  document.addEventListener('dragleave', function (e) { if (!e.relatedTarget) markDrop(null); });
  // Walks a dropped folder; readEntries answers in batches until empty.
  function walk(entry, out) {
    return new Promise(function (resolve) {
      if (entry.isFile) {
        entry.file(function (f) { out.push({ file: f, path: entry.fullPath.replace(/^\/+/, '') }); resolve(); }, function () { resolve(); });
        return;
      }
      var reader = entry.createReader(), pending = [];
      (function more() {
        reader.readEntries(function (batch) {
          if (batch.length === 0) return Promise.all(pending).then(function () { resolve(); });
          batch.forEach(function (c) { pending.push(walk(c, out)); });
          more();
        }, function () { Promise.all(pending).then(function () { resolve(); }); });
      })();
    });
  }
  // The browser says only "3 files": name them, so a person sees what
  // they are about to check in.
  document.addEventListener('change', function (e) {
    var input = e.target, form = input.closest && input.closest('form.drop-target');
    if (!form || !input.matches('input[type=file]')) return;
    var list = form.querySelector('.picked');
    if (!list) {
      list = document.createElement('p');
      list.className = 'picked muted';
      list.setAttribute('aria-live', 'polite');
      input.closest('label').insertAdjacentElement('afterend', list);
    }
    var names = Array.prototype.map.call(input.files, function (f) { return f.name; });
    list.textContent = names.length ? names.length + (names.length === 1 ? ' file: ' : ' files: ') + names.join(', ') : '';
  });
  document.addEventListener('reset', function (e) {
    var list = e.target.querySelector && e.target.querySelector('.picked');
    if (list) list.textContent = '';
  });
  document.addEventListener('drop', function (e) {
    markDrop(null);
    if (!hasFiles(e) || (e.target.matches && e.target.matches('input[type=file]'))) return;
    var zone = dropZone(e.target);
    if (!zone) return;
    e.preventDefault();
    if (zone.matches('form.drop-target')) {
      // Added to what is already picked (a second drop, or a drop after
      // the picker): a file of the same name is the newer one.
      var input = zone.querySelector('input[type=file]');
      if (!input) return;
      var all = new DataTransfer(), dropped = Array.prototype.slice.call(e.dataTransfer.files);
      var names = new Set(dropped.map(function (f) { return f.name; }));
      Array.prototype.forEach.call(input.files, function (f) { if (!names.has(f.name)) all.items.add(f); });
      dropped.forEach(function (f) { all.items.add(f); });
      input.files = all.files;
      input.dispatchEvent(new Event('change', { bubbles: true }));
      return;
    }
    var folder = dropFolder(e.target);
    // Entries must be taken now: the DataTransfer is emptied after this handler.
    var entries = [], loose = [];
    Array.prototype.forEach.call(e.dataTransfer.items || [], function (it) {
      var en = it.kind === 'file' && it.webkitGetAsEntry && it.webkitGetAsEntry();
      if (en) entries.push(en);
      else if (it.kind === 'file') { var f = it.getAsFile(); if (f) loose.push({ file: f, path: f.name }); }
    });
    var out = loose.slice();
    Promise.all(entries.map(function (en) { return walk(en, out); })).then(function () {
      if (out.length === 0) { toast('Nothing to upload: the folder is empty.'); return; }
      uploadFiles(out, folder);
    });
  });

  /* ==== Issue 12, small things: the size check before sending, the
   * file-type question on check-in, drafts that survive a sign-in, and the
   * live Activity page. Each in its own functions; wired up below. ==== */

  /* ---- Size check: every upload / check-in form carries its limit from
   * the server (.size-limit[data-max-upload], with the server's sentence in
   * data-too-large). What is picked or dropped is measured at once; over
   * the limit the sentence shows under the field and the form is not sent.
   * The files of one form count together, as the server counts them. ---- */
  function sizeLimitOf(form) {
    var el = form && form.querySelector && form.querySelector('.size-limit[data-max-upload]');
    var max = el ? parseInt(el.dataset.maxUpload, 10) : NaN;
    return max > 0 ? { max: max, sentence: el.dataset.tooLarge || '', el: el } : null;
  }
  function pickedBytes(form) {
    var total = 0;
    form.querySelectorAll('input[type=file]').forEach(function (input) {
      Array.prototype.forEach.call(input.files || [], function (f) { total += f.size; });
    });
    return total;
  }
  // True when what is picked fits (or the form states no limit).
  function pickedCount(form) {
    var n = 0;
    form.querySelectorAll('input[type=file]').forEach(function (input) { n += (input.files || []).length; });
    return n;
  }
  function checkSize(form) {
    var limit = sizeLimitOf(form);
    if (!limit) return true;
    // Too many files is told as too large is: a folder of 600 was sent
    // whole, then refused.
    var most = parseInt(limit.el.dataset.maxFiles, 10), n = pickedCount(form);
    var sentence = limit.sentence, over = pickedBytes(form) > limit.max;
    if (!over && most > 0 && n > most) {
      over = true;
      sentence = (limit.el.dataset.tooMany || '').replace('{n}', String(n));
    }
    var note = form.querySelector('.size-error');
    if (over && !note) {
      note = document.createElement('p');
      note.className = 'size-error error';
      note.setAttribute('role', 'alert');
      limit.el.insertAdjacentElement('afterend', note);
    }
    if (note) { note.hidden = !over; note.textContent = over ? sentence : ''; }
    form.querySelectorAll('input[type=file]').forEach(function (input) {
      if (over) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
    });
    return !over;
  }
  // A drop on the list: measured as the bulk upload form measures (its
  // files count together), with that form's sentence.
  function dropTooLarge(list) {
    var limit = sizeLimitOf(document.querySelector('form[data-bulk]') || document), total = 0;
    list.forEach(function (f) { total += f.file.size; });
    if (!limit) return null;
    if (total > limit.max) return limit.sentence;
    var most = parseInt(limit.el.dataset.maxFiles, 10);
    return most > 0 && list.length > most ? (limit.el.dataset.tooMany || '').replace('{n}', String(list.length)) : null;
  }

  /* ---- File type on check-in: picking bracket.sldprt for fixture.mcam
   * asks first, inline: "This is a .sldprt file; fixture.mcam is a .mcam.
   * Check it in anyway?" [Check in anyway] [Choose another]. The form
   * carries data-name / data-ext; the server and the API do not ask. ---- */
  function extOf(name) {
    var i = name.lastIndexOf('.');
    return i > 0 && i < name.length - 1 ? name.slice(i + 1).toLowerCase() : '';
  }
  function typeQuestion(form) {
    var want = form.dataset.ext, input = form.querySelector('input[type=file]');
    var file = input && input.files && input.files[0];
    if (!want || !file) return null;
    var got = extOf(file.name);
    if (got === want || form.dataset.typeOk === file.name) return null;
    return (got ? 'This is a .' + got + ' file' : 'This file has no type') +
      '; ' + form.dataset.name + ' is a .' + want + '. Check it in anyway?';
  }
  function clearTypeQuestion(form) {
    var q = form.querySelector('.type-confirm');
    if (q) q.remove();
  }
  // After the click has bubbled: a target already gone from the page
  // looks like a click outside the popover, which closes it.
  function clearTypeQuestionSoon(form) { setTimeout(function () { clearTypeQuestion(form); }, 0); }
  function askType(form, text, submitter) {
    clearTypeQuestion(form);
    var box = document.createElement('div'), p = document.createElement('p');
    var yes = document.createElement('button'), no = document.createElement('button');
    box.className = 'type-confirm';
    box.setAttribute('role', 'group');
    box.setAttribute('aria-label', 'Different file type');
    p.textContent = text;
    p.setAttribute('role', 'alert');
    yes.type = 'button'; yes.className = 'btn primary'; yes.textContent = 'Check in anyway';
    no.type = 'button'; no.className = 'btn'; no.textContent = 'Choose another';
    box.appendChild(p); box.appendChild(yes); box.appendChild(no);
    var input = form.querySelector('input[type=file]');
    yes.addEventListener('click', function () {
      var f = input && input.files && input.files[0];
      if (f) form.dataset.typeOk = f.name;
      clearTypeQuestionSoon(form);
      if (submitter && submitter.isConnected) form.requestSubmit(submitter); else form.requestSubmit();
    });
    no.addEventListener('click', function () {
      clearTypeQuestionSoon(form);
      // No change event: its handler would take the question away at once.
      delete form.dataset.typeOk;
      if (input) { input.value = ''; checkSize(form); input.focus(); }
    });
    var at = form.querySelector('button[type=submit]');
    if (at) form.insertBefore(box, at); else form.appendChild(box);
    yes.focus();
  }
  // Capture: runs before htmx's own submit listener on the form (and the
  // bulk form's), so a refused form is never sent.
  function guardSubmit(e) {
    var form = e.target;
    if (!form || form.tagName !== 'FORM') return;
    var stop = function () { e.preventDefault(); e.stopPropagation(); };
    if (!checkSize(form)) {
      stop();
      var input = form.querySelector('input[type=file]');
      if (input) input.focus();
      return;
    }
    var q = typeQuestion(form);
    if (q) { stop(); askType(form, q, e.submitter); }
  }
  function fileFieldChanged(e) {
    var input = e.target, form = input && input.form;
    if (!form || !input.matches('input[type=file]')) return;
    delete form.dataset.typeOk;
    clearTypeQuestion(form);
    checkSize(form);
  }

  /* ---- Drafts: what a person types into a comment or message survives a
   * session that ended under them (the action lands on the sign-in page,
   * which comes back here). Kept per tab in sessionStorage, by form action
   * and field name; restored into an empty field on load and after a swap;
   * dropped once that form's request succeeds. ---- */
  var DRAFT = 'latch-draft:';
  var DRAFT_FIELDS = 'textarea[name=message], input[name=comment], input[name=message]';
  // Drafts are one person's: keyed by username, so on a shared PC the next
  // person signing in to this tab never gets them (a page with nobody
  // signed in keeps none).
  function draftKey(field) {
    var form = field.form, action = form && form.getAttribute('action'), me = document.body.dataset.user;
    return action && me ? DRAFT + me + ':' + action + '|' + field.name : null;
  }
  // Drops the drafts of everyone but `keep` (nobody's when empty).
  function dropOthersDrafts(keep) {
    var mine = keep ? DRAFT + keep + ':' : null;
    try {
      Object.keys(sessionStorage).forEach(function (k) {
        if (k.indexOf(DRAFT) === 0 && (!mine || k.indexOf(mine) !== 0)) sessionStorage.removeItem(k);
      });
    } catch (err) { /* storage off */ }
  }
  // Logging out is leaving the PC: nothing typed stays behind.
  document.addEventListener('submit', function (e) {
    var f = e.target;
    if (f && f.getAttribute && f.getAttribute('action') === '/logout') dropOthersDrafts('');
  }, true);
  function saveDraft(e) {
    var field = e.target;
    if (!field.matches || !field.matches(DRAFT_FIELDS)) return;
    var key = draftKey(field);
    if (!key) return;
    try {
      if (field.value) sessionStorage.setItem(key, field.value); else sessionStorage.removeItem(key);
    } catch (err) { /* storage off or full: nothing kept */ }
  }
  function restoreDrafts(root) {
    if (!root || !root.querySelectorAll) return;
    root.querySelectorAll(DRAFT_FIELDS).forEach(function (field) {
      var key = draftKey(field), v = null;
      if (!key || field.value) return;
      try { v = sessionStorage.getItem(key); } catch (err) { /* storage off */ }
      if (v) field.value = v;
    });
  }
  // Keys taken as the request leaves, dropped when its answer is a success:
  // by then the reply may have swapped the form out, and a detached
  // form's events reach no listener here.
  function dropDraftsOnSuccess(e) {
    var form = e.target, x = e.detail && e.detail.xhr;
    if (!form || form.tagName !== 'FORM' || !x) return;
    var keys = [];
    form.querySelectorAll(DRAFT_FIELDS).forEach(function (field) {
      var key = draftKey(field);
      if (key) keys.push(key);
    });
    if (keys.length === 0) return;
    x.addEventListener('load', function () {
      if (x.status < 200 || x.status >= 300) return;
      keys.forEach(function (key) {
        try { sessionStorage.removeItem(key); } catch (err) { /* storage off */ }
      });
    });
  }

  /* ---- The live Activity page: it shares #activity-list with the
   * dashboard's feed, so each event's fragment puts its line at the top.
   * When the page is filtered (kind / who / file, in the list's data
   * attributes, matched as the server matches them), a line that does not
   * match is dropped before it is swapped in. ---- */
  function activityLineFilter(e) {
    var d = e.detail, t = d && d.target, f = d && d.fragment;
    if (!t || t.id !== 'activity-list' || !f || !f.querySelectorAll) return;
    var kind = t.dataset.kind || '', who = t.dataset.who || '', q = (t.dataset.q || '').toLowerCase();
    f.querySelectorAll('li.activity-line').forEach(function (line) {
      var ok = (!kind || line.dataset.kind === kind) && (!who || line.dataset.actor === who) &&
        (!q || (line.dataset.path || '').toLowerCase().indexOf(q) >= 0) &&
        !t.querySelector('li[data-seq="' + line.dataset.seq + '"]');
      if (!ok) line.remove();
    });
  }
  function activityLineAdded(e) {
    var t = e.detail && e.detail.target, empty = document.querySelector('.activity-empty');
    if (t && t.id === 'activity-list' && empty && t.querySelector('li')) empty.remove();
  }

  document.addEventListener('submit', guardSubmit, true);
  document.addEventListener('change', fileFieldChanged);
  document.addEventListener('input', saveDraft);
  document.addEventListener('htmx:beforeRequest', dropDraftsOnSuccess);
  document.addEventListener('htmx:afterSwap', function (e) { restoreDrafts(e.detail && e.detail.target); });
  document.addEventListener('htmx:oobAfterSwap', function (e) { restoreDrafts(e.detail && e.detail.target); activityLineAdded(e); });
  document.addEventListener('htmx:oobBeforeSwap', activityLineFilter);
  /* ==== end of issue 12, small things ==== */

  function init() {
    showDesktop();
    var box = document.getElementById('toasts');
    if (box) {
      box.querySelectorAll('.toast').forEach(armToast); // server-rendered flashes
      new MutationObserver(function (ms) {
        ms.forEach(function (m) { m.addedNodes.forEach(toastAdded); });
      }).observe(box, { childList: true });
    }
    document.body.dataset.js = 'on';
    // Someone else signed in to this tab: the last person's drafts go.
    if (document.body.dataset.user) dropOthersDrafts(document.body.dataset.user);
    restoreDrafts(document); // issue 12: drafts kept across a sign-in
    showSelection();
    listChanged();
    makeToolbars();
    // A folder whose last card left (a live delete) goes with it.
    if (document.getElementById('file-list')) new MutationObserver(function (ms) {
      queueSelection();
      if (!ms.some(function (m) { return m.removedNodes.length > 0; })) return;
      document.querySelectorAll('section.folder').forEach(function (s) {
        if (!s.querySelector('article.card')) s.remove();
      });
    }).observe(document.body, { childList: true, subtree: true });
    var panel = document.getElementById('panel');
    if (panel) new MutationObserver(panelChanged).observe(panel, { childList: true });
    // Opt-in cap (data-max) so a feed left open for weeks stays small.
    var feed = document.getElementById('activity-list'), max = feed && parseInt(feed.dataset.max, 10);
    if (max > 0) new MutationObserver(function () {
      while (feed.children.length > max) feed.lastElementChild.remove();
    }).observe(feed, { childList: true });
    start();
  }
  // Deferred scripts run before DOMContentLoaded; htmx registered its
  // listener first, so the body is processed before our sink exists.
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
