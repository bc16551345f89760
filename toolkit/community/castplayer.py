"""A small asciicast v2 player for self-contained HTML pages (build log, weekly page).

The recording (already redacted) is embedded in the page as a ``<script
type="application/x-asciicast">`` block; the player is ~100 lines of plain JavaScript written
for routerkit (no download, no framework). Its terminal model is the one of
:class:`toolkit.protocol.asciicast.Screen` (text with wrapping, CR, LF, backspace, tab,
cursor moves, erase in line/display; other escapes ignored), so a page shows the same final
screen as ``routerkit sessions replay``. Without JavaScript the ``<pre>`` holds the clean text.

The page opens on the recording's last screen; the button replays it with its timing (pauses
cut to the recording's ``idle_time_limit``), and ``#rk-play`` in the address plays every
recording on the page at once, 50 times faster (used by the tests).
"""

from __future__ import annotations

import html

from toolkit.protocol import asciicast
from toolkit.protocol.console import strip_terminal

PLAYER_JS = r"""
(function () {
  function Term(w, h) {
    this.w = w; this.h = h; this.x = 0; this.y = 0; this.wrap = false; this.st = 0;
    this.buf = ''; this.rows = [];
    for (var i = 0; i < h; i++) this.rows.push(this.blank());
  }
  Term.prototype.blank = function () { var r = []; for (var i = 0; i < this.w; i++) r.push(' '); return r; };
  Term.prototype.lf = function () {
    if (this.y === this.h - 1) { this.rows.shift(); this.rows.push(this.blank()); } else this.y++;
  };
  Term.prototype.put = function (c) {
    if (this.wrap) { this.x = 0; this.lf(); this.wrap = false; }
    this.rows[this.y][this.x] = c;
    if (this.x === this.w - 1) this.wrap = true; else this.x++;
  };
  Term.prototype.csi = function (params, fin) {
    if (params.charAt(0) === '?') return;
    var n = params ? params.split(';').map(function (p) { return /^\d+$/.test(p) ? +p : 0; }) : [];
    var first = n.length ? n[0] : 0, count = Math.max(1, first), i, r = this.rows[this.y];
    this.wrap = false;
    if (fin === 'A') this.y = Math.max(0, this.y - count);
    else if (fin === 'B') this.y = Math.min(this.h - 1, this.y + count);
    else if (fin === 'C') this.x = Math.min(this.w - 1, this.x + count);
    else if (fin === 'D') this.x = Math.max(0, this.x - count);
    else if (fin === 'G') this.x = Math.min(this.w - 1, count - 1);
    else if (fin === 'H' || fin === 'f') {
      this.y = Math.min(this.h - 1, Math.max(1, n.length ? n[0] : 1) - 1);
      this.x = Math.min(this.w - 1, Math.max(1, n.length > 1 ? n[1] : 1) - 1);
    } else if (fin === 'K') {
      var a = first === 0 ? this.x : 0, b = first === 1 ? this.x + 1 : this.w;
      for (i = a; i < b; i++) r[i] = ' ';
    } else if (fin === 'J') {
      if (first === 0) { this.csi('0', 'K'); for (i = this.y + 1; i < this.h; i++) this.rows[i] = this.blank(); }
      else if (first === 1) { this.csi('1', 'K'); for (i = 0; i < this.y; i++) this.rows[i] = this.blank(); }
      else for (i = 0; i < this.h; i++) this.rows[i] = this.blank();
    }
  };
  // states: 0 text, 1 after ESC, 2 CSI, 3 OSC, 4 OSC after ESC, 5 ESC intermediates
  Term.prototype.feed = function (s) {
    for (var k = 0; k < s.length; k++) {
      var c = s.charAt(k), o = s.charCodeAt(k);
      if (this.st === 0) {
        if (c === '\x1b') { this.st = 1; this.buf = ''; }
        else if (c === '\n' || c === '\x0b' || c === '\x0c') { this.wrap = false; this.lf(); }
        else if (c === '\r') { this.wrap = false; this.x = 0; }
        else if (c === '\b') { this.wrap = false; this.x = Math.max(0, this.x - 1); }
        else if (c === '\t') this.x = Math.min(this.w - 1, (Math.floor(this.x / 8) + 1) * 8);
        else if (o >= 32 && o !== 127) this.put(c);
      } else if (this.st === 1) {
        if (c === '[') this.st = 2; else if (c === ']') this.st = 3;
        else if (o >= 32 && o <= 47) this.st = 5; else this.st = 0;
      } else if (this.st === 2) {
        if (o >= 64 && o <= 126) { this.csi(this.buf.replace(/[ -\/]+$/, ''), c); this.st = 0; }
        else this.buf += c;
      } else if (this.st === 3) { if (c === '\x07') this.st = 0; else if (c === '\x1b') this.st = 4; }
      else if (this.st === 4) { this.st = 0; }
      else if (this.st === 5) { if (o >= 48 && o <= 126) this.st = 0; }
    }
  };
  Term.prototype.text = function () {
    var out = this.rows.map(function (r) { return r.join('').replace(/\s+$/, ''); });
    while (out.length && !out[out.length - 1]) out.pop();
    return out.join('\n');
  };
  function parse(src) {
    var lines = src.split('\n'), head = null, ev = [];
    for (var i = 0; i < lines.length; i++) {
      if (!lines[i].trim()) continue;
      var v; try { v = JSON.parse(lines[i]); } catch (e) { continue; }
      if (head === null) { head = v; continue; }
      if (v instanceof Array && v.length === 3) ev.push(v);
    }
    return { head: head || {}, ev: ev };
  }
  var fast = location.hash === '#rk-play';
  Array.prototype.forEach.call(document.querySelectorAll('.rk-cast'), function (box) {
    var cast = parse(box.querySelector('script[type="application/x-asciicast"]').textContent);
    var w = cast.head.width || 120, h = cast.head.height || 40, pre = box.querySelector('pre');
    var button = box.querySelector('button'), idle = cast.head.idle_time_limit || 2, timer = null;
    function upto(n) {
      var t = new Term(w, h);
      for (var i = 0; i < n; i++) if (cast.ev[i][1] === 'o') t.feed(cast.ev[i][2]);
      return t;
    }
    function play(speed) {
      if (timer) clearTimeout(timer);
      var t = new Term(w, h), i = 0, last = 0;
      box.setAttribute('data-state', 'playing');
      (function next() {
        if (i >= cast.ev.length) { box.setAttribute('data-state', 'done'); timer = null; return; }
        var e = cast.ev[i++], gap = Math.min(Math.max(0, e[0] - last), idle);
        last = e[0];
        timer = setTimeout(function () {
          if (e[1] === 'o') { t.feed(e[2]); pre.textContent = t.text(); }
          next();
        }, 1000 * gap / speed);
      })();
    }
    pre.textContent = upto(cast.ev.length).text();
    box.setAttribute('data-state', 'ready');
    button.addEventListener('click', function () { play(1); });
    if (fast) play(50);
  });
})();
"""


def embed(cast: asciicast.Cast, title: str) -> str:
    """One recording as an HTML block: the clean text, the data, a replay button."""
    # "<" only occurs inside JSON strings: \u003c keeps the JSON valid and the HTML parser
    # from ever seeing "</script" or "<!--" in the block
    data = cast.to_bytes().decode("utf-8").replace("<", "\\u003c")
    text = strip_terminal(cast.output().encode("utf-8"))
    return (
        f'<figure class="rk-cast"><figcaption>{html.escape(title)} · '
        f"{cast.duration:.1f} s "
        '<button type="button">▶ replay</button></figcaption>'
        f"<pre>{html.escape(text)}</pre>"
        f'<script type="application/x-asciicast">{data}</script></figure>'
    )


def script() -> str:
    """The player, once per page (after the recordings)."""
    return f"<script>{PLAYER_JS}</script>"


CSS = ".rk-cast pre{background:#111;color:#ddd;max-height:32rem}.rk-cast button{font:inherit}"
