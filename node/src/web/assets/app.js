/*
 * fulmen net web — the page's script. Plain JavaScript, no library, no build step.
 *
 * Draws a live `fulmen net` test network from the server's snapshots (see ../API.md):
 * the graph as SVG (nodes, channels with balance bars and states), payments lighting up hop
 * by hop, node cards, a per-node detail sheet, and forms posting to /api/action.
 * Snapshots come from the `state` events of /api/events (plus one GET /api/state at start);
 * every one goes through `applySnapshot`, which only updates existing DOM elements and
 * creates/removes them when nodes, channels or payments appear/disappear.
 *
 * All data reaches the DOM through textContent / attributes, never innerHTML.
 * For tests: window.fulmen = { state, stats, applySnapshot }, body[data-ready="1"].
 */
'use strict';
(() => {
  // ---------------------------------------------------------------- helpers

  const $ = (id) => document.getElementById(id);
  const SVGNS = 'http://www.w3.org/2000/svg';
  const nf = new Intl.NumberFormat('en-US');
  const nf3 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 3 });

  /** An HTML element with attributes/properties and children (strings become text). */
  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k.startsWith('data-') || k === 'title' || k === 'colspan') e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
    return e;
  }

  /** An SVG element with attributes. */
  function sv(tag, attrs, parent) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  /** Sets an attribute only when it changes (keeps style recalculation down). */
  function setA(e, name, value) {
    const s = String(value);
    if (e.getAttribute(name) !== s) e.setAttribute(name, s);
  }
  function setT(e, text) {
    const s = String(text);
    if (e.textContent !== s) e.textContent = s;
  }

  const sat = (n) => nf.format(Math.floor(Number(n) || 0)) + ' sat';
  const msatSat = (m) => sat((Number(m) || 0) / 1000);
  const feeSat = (m) => nf3.format((Number(m) || 0) / 1000) + ' sat';
  const shortId = (s) => (s && s.length > 8 ? s.slice(0, 8) + '…' : s || '');
  const timeText = (t) => (t ? new Date(t * 1000).toLocaleTimeString('en-GB') : '');
  const peerName = (id) => nameById.get(id) || shortId(id);
  /** An RPC list that may come bare or wrapped (`{"channels": [...]}`). */
  const list = (v, key) => (Array.isArray(v) ? v : v && Array.isArray(v[key]) ? v[key] : []);
  const isBreach = (kind) => /revoked/.test(kind || '');

  // ---------------------------------------------------------------- state

  const stats = { snapshots: 0, lastApplyMs: 0, maxApplyMs: 0, layoutMs: 0, layouts: 0, animations: 0 };
  const fulmen = (window.fulmen = { state: null, stats, applySnapshot });

  const svg = $('graph');
  const chLayer = $('channels-layer');
  const ndLayer = $('nodes-layer');
  const animLayer = $('anim');

  let nameById = new Map(); // node id -> name
  let nodeIndex = new Map(); // name -> snapshot node
  let size = { w: 800, h: 600 }; // graph area, px (the SVG's viewBox)
  let layout = { key: '', mode: 'circle', pos: new Map() }; // unit coordinates per name
  let geom = 0; // bumped when positions or channel geometry change
  let chanKey = ''; // set of channel ids, to notice appearing/disappearing channels
  let pairs = new Map(); // "a|b" (sorted) -> [channel ids], for parallel edges and hops
  let nodeSetKey = ''; // for refilling the selects

  const nodeEls = new Map(); // name -> { g, circle, label, title, sig }
  const chanEls = new Map(); // channel_id -> { g, path, barA, barB, cap, note, title, sig, d, mid }
  const cardEls = new Map(); // name -> { card, ... }
  const payEls = new Map(); // payment id -> { li, sig }
  const seenPayments = new Map(); // payment id -> last status

  // ---------------------------------------------------------------- layout

  /**
   * Nodes on a circle (≤ 12) or a force layout; unit coordinates [0,1]². Runs once per node
   * set (and, for the force layout, per set of connected pairs: a new channel re-lays out).
   */
  function computeLayout(nodes, channels) {
    const names = nodes.map((n) => n.name);
    const pairs = names.length > 12 ? channels.map((c) => c.a + '|' + c.b).sort().join(',') : '';
    const key = names.join('\n') + '#' + pairs;
    if (key === layout.key) return false;
    const t0 = performance.now();
    const pos = new Map();
    const n = names.length;
    if (n <= 12) {
      const start = n === 2 ? Math.PI : -Math.PI / 2;
      names.forEach((name, i) => {
        const a = start + (2 * Math.PI * i) / Math.max(n, 1);
        pos.set(name, n === 1 ? { x: 0.5, y: 0.5 } : { x: 0.5 + 0.5 * Math.cos(a), y: 0.5 + 0.5 * Math.sin(a) });
      });
      layout = { key, mode: 'circle', pos };
    } else {
      forceLayout(names, channels, pos);
      layout = { key, mode: 'force', pos };
    }
    stats.layoutMs = performance.now() - t0;
    stats.layouts++;
    return true;
  }

  /**
   * Fruchterman–Reingold, deterministic: seeded on a sunflower spiral in node order, a fixed
   * number of iterations with linear cooling, mild gravity so that isolated nodes stay in.
   */
  function forceLayout(names, channels, out) {
    const n = names.length;
    const idx = new Map(names.map((s, i) => [s, i]));
    const x = new Float64Array(n), y = new Float64Array(n);
    const dx = new Float64Array(n), dy = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const r = 0.5 * Math.sqrt((i + 0.5) / n), th = i * 2.399963229728653;
      x[i] = 0.5 + r * Math.cos(th);
      y[i] = 0.5 + r * Math.sin(th);
    }
    const seen = new Set(), edges = [];
    for (const c of channels) {
      const a = idx.get(c.a), b = idx.get(c.b);
      if (a === undefined || b === undefined || a === b) continue;
      const k = a < b ? a * n + b : b * n + a;
      if (!seen.has(k)) { seen.add(k); edges.push(a, b); }
    }
    const k = Math.sqrt(1 / n), k2 = k * k, iters = 300, gravity = 0.6;
    for (let it = 0; it < iters; it++) {
      dx.fill(0); dy.fill(0);
      for (let i = 0; i < n; i++) {
        for (let j = i + 1; j < n; j++) {
          const ex = x[i] - x[j], ey = y[i] - y[j];
          const f = k2 / Math.max(ex * ex + ey * ey, 1e-6);
          dx[i] += ex * f; dy[i] += ey * f; dx[j] -= ex * f; dy[j] -= ey * f;
        }
      }
      for (let e = 0; e < edges.length; e += 2) {
        const a = edges[e], b = edges[e + 1];
        const ex = x[a] - x[b], ey = y[a] - y[b];
        const f = Math.sqrt(ex * ex + ey * ey) / k;
        dx[a] -= ex * f; dy[a] -= ey * f; dx[b] += ex * f; dy[b] += ey * f;
      }
      const temp = 0.08 * (1 - it / iters) + 0.002;
      for (let i = 0; i < n; i++) {
        dx[i] += (0.5 - x[i]) * gravity; dy[i] += (0.5 - y[i]) * gravity;
        const len = Math.sqrt(dx[i] * dx[i] + dy[i] * dy[i]);
        if (len > 0) { const s = Math.min(len, temp) / len; x[i] += dx[i] * s; y[i] += dy[i] * s; }
      }
    }
    // Stretch to fill the unit square.
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) { x0 = Math.min(x0, x[i]); x1 = Math.max(x1, x[i]); y0 = Math.min(y0, y[i]); y1 = Math.max(y1, y[i]); }
    const sx = x1 - x0 || 1, sy = y1 - y0 || 1;
    names.forEach((name, i) => out.set(name, { x: (x[i] - x0) / sx, y: (y[i] - y0) / sy }));
  }

  /** Node radius and whether the graph is "dense" (small labels, capacity on hover). */
  const dense = () => layout.pos.size > 12;
  const radius = () => (dense() ? Math.max(6, 16 - layout.pos.size / 10) : 22);

  /** Pixel position of a node in the SVG (the bottom keeps 16 px free for the legend). */
  function px(name) {
    const p = layout.pos.get(name);
    if (!p) return null;
    const m = radius() + (dense() ? 14 : 40);
    const w = Math.max(size.w - 2 * m, 10), h = Math.max(size.h - 2 * m - 16, 10);
    if (layout.mode === 'circle') {
      const s = Math.min(w, h);
      return { x: size.w / 2 + (p.x - 0.5) * s, y: m + h / 2 + (p.y - 0.5) * s };
    }
    return { x: m + p.x * w, y: m + p.y * h };
  }

  /** Keeps the viewBox equal to the graph area's pixel size (text stays at its CSS size). */
  function measure() {
    const wrap = $('graph-wrap');
    const w = Math.max(wrap.clientWidth, 200), h = Math.max(wrap.clientHeight, 200);
    if (w === size.w && h === size.h) return false;
    size = { w, h };
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    animLayer.replaceChildren();
    geom++;
    return true;
  }

  // ---------------------------------------------------------------- graph

  /** Creates/removes/updates node and channel elements for a snapshot. */
  function renderGraph(snap) {
    const nodes = snap.nodes, channels = snap.channels;
    if (computeLayout(nodes, channels)) { geom++; animLayer.replaceChildren(); } // overlays drawn for old positions
    svg.classList.toggle('dense', dense());
    $('empty').hidden = nodes.length > 0;

    // Channels: parallel edges between the same two nodes get distinct offsets.
    const ck = channels.map((c) => c.channel_id).join(',');
    if (ck !== chanKey) {
      chanKey = ck;
      pairs = new Map();
      for (const c of channels) {
        const key = c.a < c.b ? c.a + '|' + c.b : c.b + '|' + c.a;
        if (!pairs.has(key)) pairs.set(key, []);
        pairs.get(key).push(c.channel_id);
      }
      geom++;
    }
    const live = new Set();
    for (const c of channels) {
      live.add(c.channel_id);
      let r = chanEls.get(c.channel_id);
      if (!r) { r = makeChannel(c); chanEls.set(c.channel_id, r); }
      updateChannel(r, c);
    }
    for (const [id, r] of chanEls) if (!live.has(id)) { r.g.remove(); chanEls.delete(id); }

    const names = new Set();
    for (const n of nodes) {
      names.add(n.name);
      let r = nodeEls.get(n.name);
      if (!r) { r = makeNode(n); nodeEls.set(n.name, r); }
      updateNode(r, n);
    }
    for (const [name, r] of nodeEls) if (!names.has(name)) { r.g.remove(); nodeEls.delete(name); }
  }

  function makeNode(n) {
    const g = sv('g', { class: 'node', 'data-name': n.name, tabindex: '0' }, ndLayer);
    const r = {
      g,
      title: sv('title', {}, g),
      circle: sv('circle', { r: 10 }, g),
      initial: sv('text', { class: 'initial', 'text-anchor': 'middle', dy: '0.35em' }, g),
      label: sv('text', { class: 'label', 'text-anchor': 'middle' }, g),
      sig: '',
    };
    g.addEventListener('click', () => openDetail(n.name));
    g.addEventListener('keydown', (e) => { if (e.key === 'Enter') openDetail(n.name); });
    return r;
  }

  function updateNode(r, n) {
    const sig = [geom, n.alive, n.dev, n.tower, n.error, n.onchain_sat, n.channel_sat, n.alias, n.num_peers, detailName].join('|');
    if (sig === r.sig) return;
    r.sig = sig;
    const p = px(n.name) || { x: 0, y: 0 };
    const rad = radius();
    setA(r.g, 'transform', `translate(${p.x.toFixed(1)},${p.y.toFixed(1)})`);
    setA(r.circle, 'r', rad);
    setA(r.label, 'y', rad + (dense() ? 10 : 16));
    setT(r.label, n.name);
    setT(r.initial, dense() ? '' : n.name.slice(0, 1).toUpperCase());
    setA(r.g, 'class', 'node' + (n.alive ? '' : ' dead') + (n.dev ? ' dev' : '') + (n.tower ? ' tower' : '') + (n.name === detailName ? ' selected' : ''));
    setT(r.title, `${n.name}${n.alias && n.alias !== n.name ? ' (' + n.alias + ')' : ''} · ${shortId(n.node_id)}\n` +
      `on chain ${sat(n.onchain_sat)} · in channels ${sat(n.channel_sat)} · ${n.num_peers} peers` +
      (n.alive ? '' : `\nnot answering: ${n.error || ''}`));
  }

  function makeChannel(c) {
    const g = sv('g', { class: 'channel', 'data-channel-id': c.channel_id }, chLayer);
    const r = { g, title: sv('title', {}, g), path: sv('path', { class: 'edge' }, g), sig: '', d: '', mid: null };
    r.bar = sv('g', { class: 'bar' }, g);
    r.barA = sv('rect', { class: 'bar-a' }, r.bar);
    r.barB = sv('rect', { class: 'bar-b' }, r.bar);
    r.cap = sv('text', { class: 'cap' }, g);
    r.note = sv('text', { class: 'note' }, g);
    return r;
  }

  /** Path (a quadratic curve for parallel channels), balance bar and labels of one channel. */
  function updateChannel(r, c) {
    const sig = [geom, c.state, c.a_msat, c.b_msat, c.pending_htlcs, c.closing_kind, c.blocks_left, c.capacity_sat, c.short_channel_id].join('|');
    if (sig === r.sig) return;
    r.sig = sig;
    const pa = px(c.a), pb = px(c.b);
    const g = r.g;
    if (!pa || !pb) { setA(g, 'display', 'none'); return; }
    g.removeAttribute('display');
    // Offset for the k-th of m channels between the same pair, perpendicular to a→b.
    const key = c.a < c.b ? c.a + '|' + c.b : c.b + '|' + c.a;
    const group = pairs.get(key) || [c.channel_id];
    const k = group.indexOf(c.channel_id), m = group.length;
    const sign = c.a < c.b ? 1 : -1; // same side whatever the direction
    const off = (k - (m - 1) / 2) * (dense() ? 10 : 28) * sign;
    const vx = pb.x - pa.x, vy = pb.y - pa.y, len = Math.hypot(vx, vy) || 1;
    const nx = -vy / len, ny = vx / len;
    const mid = { x: (pa.x + pb.x) / 2 + nx * off, y: (pa.y + pb.y) / 2 + ny * off };
    const cx = (pa.x + pb.x) / 2 + nx * off * 2, cy = (pa.y + pb.y) / 2 + ny * off * 2;
    r.d = off ? `M${pa.x.toFixed(1)},${pa.y.toFixed(1)} Q${cx.toFixed(1)},${cy.toFixed(1)} ${pb.x.toFixed(1)},${pb.y.toFixed(1)}`
      : `M${pa.x.toFixed(1)},${pa.y.toFixed(1)} L${pb.x.toFixed(1)},${pb.y.toFixed(1)}`;
    r.mid = mid;
    setA(r.path, 'd', r.d);

    // Balance bar at the middle, along a→b: a's part on a's side.
    const bw = dense() ? 18 : 46, bh = dense() ? 4 : 8;
    const a = Number(c.a_msat) || 0, b = Number(c.b_msat) || 0;
    const fa = a + b > 0 ? a / (a + b) : 0.5;
    const angle = (Math.atan2(vy, vx) * 180) / Math.PI;
    setA(r.bar, 'transform', `translate(${mid.x.toFixed(1)},${mid.y.toFixed(1)}) rotate(${angle.toFixed(1)})`);
    setA(r.barA, 'x', -bw / 2); setA(r.barA, 'y', -bh / 2); setA(r.barA, 'height', bh);
    setA(r.barA, 'width', (bw * fa).toFixed(1));
    setA(r.barB, 'x', (-bw / 2 + bw * fa).toFixed(1)); setA(r.barB, 'y', -bh / 2); setA(r.barB, 'height', bh);
    setA(r.barB, 'width', (bw * (1 - fa)).toFixed(1));

    // Labels beside the bar: capacity on the outer side of a parallel group (below a single
    // edge), the state note ("3 blocks", "justice") on the other side.
    let lx = nx * Math.sign(off || 1), ly = ny * Math.sign(off || 1);
    if (!off && ly < 0) { lx = -lx; ly = -ly; }
    const ux = Math.abs(vx / len), uy = Math.abs(vy / len); // the bar's extent per axis
    const place = (t, sx, sy) => {
      const vert = Math.abs(sy) >= Math.abs(sx) * 0.8; // above/below the bar, else beside it
      const dist = bh / 2 + 4 + (bw / 2) * (vert ? uy : ux);
      setA(t, 'x', (mid.x + (vert ? 0 : Math.sign(sx) * dist)).toFixed(1));
      setA(t, 'y', (mid.y + (vert ? Math.sign(sy) * dist : 0)).toFixed(1));
      setA(t, 'text-anchor', vert ? 'middle' : sx > 0 ? 'start' : 'end');
      setA(t, 'dy', !vert ? '0.35em' : sy > 0 ? '0.8em' : '-0.1em');
    };
    place(r.cap, lx, ly);
    setT(r.cap, sat(c.capacity_sat));
    const breach = isBreach(c.closing_kind);
    let note = '';
    if (breach) note = c.state === 'closed' && c.blocks_left == null ? 'breach punished' : 'justice';
    if (c.blocks_left != null) note += (note ? ' · ' : '') + `${c.blocks_left} block${c.blocks_left === 1 ? '' : 's'}`;
    if (c.pending_htlcs > 0 && !dense()) note += (note ? ' · ' : '') + `${c.pending_htlcs} HTLC${c.pending_htlcs === 1 ? '' : 's'}`;
    place(r.note, -lx, -ly);
    setT(r.note, note);

    setA(g, 'data-state', c.state);
    setA(g, 'class', 'channel' + (breach ? ' breach' : '') + (c.pending_htlcs > 0 ? ' htlc' : '') + (c.blocks_left != null ? ' waiting' : ''));
    setT(r.title, `${c.a} ⇄ ${c.b} · ${c.state}${c.closing_kind ? ' · ' + c.closing_kind : ''}\n` +
      `capacity ${sat(c.capacity_sat)} · ${c.a} ${msatSat(a)} · ${c.b} ${msatSat(b)}\n` +
      `${c.short_channel_id || 'no scid'} · ${shortId(c.channel_id)} · pending HTLCs ${c.pending_htlcs || 0}`);
  }

  // ---------------------------------------------------------------- payment animation

  const HOP_MS = 250, HOLD_MS = 2200, MAX_ANIM = 8;

  /** The channel drawn between two nodes, preferring an active one. */
  function channelBetween(x, y) {
    const ids = pairs.get(x < y ? x + '|' + y : y + '|' + x) || [];
    const byId = (id) => chanEls.get(id);
    const states = new Map((fulmen.state ? fulmen.state.channels : []).map((c) => [c.channel_id, c.state]));
    return byId(ids.find((id) => states.get(id) === 'active') || ids.find((id) => states.get(id) !== 'closed') || ids[0]);
  }

  /** Lights up a payment's path hop by hop; ends green (succeeded) or red with ✕ (failed). */
  function animatePayment(p) {
    stats.animations++;
    const hops = p.hops || [];
    const failedAt = p.failed_at == null ? null : Math.min(p.failed_at, Math.max(hops.length - 1, 0));
    const steps = p.status === 'failed' && failedAt != null ? failedAt : Math.max(hops.length - 1, 0);
    const lit = [];
    const g = sv('g', { class: 'payment-anim', 'data-payment': p.id }, animLayer);
    for (let i = 0; i < steps; i++) {
      setTimeout(() => {
        const r = channelBetween(hops[i], hops[i + 1]);
        let d = r && r.d;
        if (!d) {
          const a = px(hops[i]), b = px(hops[i + 1]);
          if (!a || !b) return;
          d = `M${a.x},${a.y} L${b.x},${b.y}`;
        }
        lit.push(sv('path', { class: 'hop-lit', d, 'data-hop': i }, g));
      }, i * HOP_MS);
    }
    setTimeout(() => {
      if (p.status === 'succeeded') {
        for (const e of lit) e.classList.add('ok');
        ring(g, p.to, 'ok');
      } else if (p.status === 'failed') {
        if (lit.length) lit[lit.length - 1].classList.add('fail');
        const who = (failedAt != null ? hops[failedAt] : hops[hops.length - 1]) || p.from;
        const c = ring(g, who, 'fail');
        if (c) {
          const o = radius() + 9;
          const mark = sv('text', { class: 'fail-mark', x: c.x + o, y: c.y - o, 'text-anchor': 'middle', dy: '0.35em' }, g);
          mark.textContent = '✕';
        }
      }
      setTimeout(() => { g.classList.add('fade'); setTimeout(() => g.remove(), 500); }, HOLD_MS);
    }, steps * HOP_MS + 80);
  }

  /** A coloured ring around a node in the animation layer. */
  function ring(g, name, cls) {
    const p = name && px(name);
    if (!p) return null;
    sv('circle', { class: 'ring ' + cls, cx: p.x, cy: p.y, r: radius() + 5 }, g);
    return p;
  }

  // ---------------------------------------------------------------- payments list

  /** Newest first; animates payments not seen before or no longer pending (not on first load). */
  function renderPayments(snap, first) {
    const pays = snap.payments;
    const fresh = [];
    const now = new Map();
    for (const p of pays) {
      const prev = seenPayments.get(p.id);
      if (!first && (prev === undefined || (prev === 'pending' && p.status !== 'pending'))) fresh.push(p);
      now.set(p.id, p.status);
    }
    seenPayments.clear();
    for (const [k, v] of now) seenPayments.set(k, v);
    for (const p of fresh.slice(-MAX_ANIM)) animatePayment(p);

    const ul = $('payments');
    const live = new Set(), order = [];
    for (let i = pays.length - 1; i >= 0; i--) {
      const p = pays[i];
      live.add(p.id);
      let r = payEls.get(p.id);
      if (!r) { r = makePayment(p); payEls.set(p.id, r); }
      updatePayment(r, p);
      order.push(r.li);
    }
    for (const [id, r] of payEls) if (!live.has(id)) { r.li.remove(); payEls.delete(id); }
    if (!pays.length) order.push(emptyPayments);
    else emptyPayments.remove();
    placeInOrder(ul, order);
  }
  const emptyPayments = el('li', { class: 'none muted', text: 'no payments yet' });

  /** Puts `els` first in `parent` in this order, moving only those out of place. */
  function placeInOrder(parent, els) {
    let at = parent.firstElementChild;
    for (const e of els) {
      if (e === at) at = at.nextElementSibling;
      else parent.insertBefore(e, at);
    }
  }

  function makePayment(p) {
    const r = { sig: '', route: el('span', { class: 'p-route' }), amount: el('span', { class: 'p-amount' }),
      status: el('span', { class: 'p-status' }), meta: el('div', { class: 'p-meta' }), fail: el('div', { class: 'p-failure' }) };
    r.li = el('li', { class: 'payment', 'data-id': p.id, title: 'click to replay' },
      el('div', { class: 'p-line' }, r.route, r.amount, r.status), r.meta, r.fail);
    r.li.addEventListener('click', () => { const q = (fulmen.state.payments || []).find((x) => x.id === p.id); if (q) animatePayment(q); });
    return r;
  }

  function updatePayment(r, p) {
    const sig = JSON.stringify(p);
    if (sig === r.sig) return;
    r.sig = sig;
    const to = nodeIndex.has(p.to) ? p.to : shortId(p.to);
    setA(r.li, 'data-hash', p.payment_hash || '');
    setA(r.li, 'data-status', p.status);
    setT(r.route, `${p.from} → ${to}`);
    setT(r.amount, msatSat(p.amount_msat));
    setT(r.status, p.status);
    const hops = (p.hops || []).map((h, i) => (i === p.failed_at ? h + ' ✕' : h)).join(' › ');
    setT(r.meta, [`fee ${feeSat(p.fee_msat)}`, hops || 'no route', timeText(p.completed_at || p.created_at)].join(' · '));
    setT(r.fail, p.failure || '');
    r.fail.hidden = !p.failure;
  }

  // ---------------------------------------------------------------- header and node cards

  function renderHeader(snap) {
    const chain = snap.chain || {};
    setT($('height'), chain.height == null ? '–' : String(chain.height));
    setT($('mempool'), chain.mempool == null ? '–' : nf.format(chain.mempool));
    $('height').classList.toggle('bad', chain.alive === false);
    const closingStates = ['shutting_down', 'closing'];
    const open = snap.channels.filter((c) => !c.closing_kind && !closingStates.includes(c.state) &&
      c.state !== 'closed' && c.state !== 'abandoned').length;
    const closing = snap.channels.filter((c) => closingStates.includes(c.state) ||
      (c.state === 'closed' && c.blocks_left != null)).length;
    setT($('counts'), `${snap.nodes.length} nodes · ${open} open channels` +
      (closing ? ` · ${closing} closing` : '') + (chain.alive === false ? ' · chain down' : ''));
  }

  function renderCards(snap) {
    const names = new Set(), order = [];
    for (const n of snap.nodes) {
      names.add(n.name);
      let r = cardEls.get(n.name);
      if (!r) { r = makeCard(n); cardEls.set(n.name, r); }
      updateCard(r, n);
      order.push(r.card);
    }
    for (const [name, r] of cardEls) if (!names.has(name)) { r.card.remove(); cardEls.delete(name); }
    placeInOrder($('nodes'), order); // snapshot order
  }

  function makeCard(n) {
    const r = {
      sig: '',
      name: el('b', { class: 'nc-name' }),
      dev: el('span', { class: 'badge dev', text: 'dev' }),
      tower: el('span', { class: 'badge tower', text: 'tower' }),
      alias: el('span', { class: 'alias' }),
      id: el('span', { class: 'nc-id' }),
      onchain: el('span', { class: 'onchain' }),
      inchannel: el('span', { class: 'inchannel' }),
      error: el('div', { class: 'nc-error' }),
    };
    r.card = el('div', { class: 'node-card', 'data-name': n.name, tabIndex: 0 },
      el('div', { class: 'nc-head' }, el('span', { class: 'dot' }), r.name, r.dev, r.tower),
      el('div', { class: 'nc-sub' }, r.alias, r.id),
      el('div', { class: 'nc-bal', title: 'on chain' }, el('span', { class: 'k', text: 'chain' }), r.onchain),
      el('div', { class: 'nc-bal', title: 'in channels (local balances)' }, el('span', { class: 'k', text: 'channels' }), r.inchannel),
      r.error);
    r.card.addEventListener('click', () => openDetail(n.name));
    r.card.addEventListener('keydown', (e) => { if (e.key === 'Enter') openDetail(n.name); });
    return r;
  }

  function updateCard(r, n) {
    const sig = [n.alias, n.node_id, n.alive, n.dev, n.tower, n.onchain_sat, n.channel_sat, n.error, detailName].join('|');
    if (sig === r.sig) return;
    r.sig = sig;
    setT(r.name, n.name);
    setT(r.alias, n.alias && n.alias !== n.name ? n.alias + ' · ' : '');
    setT(r.id, shortId(n.node_id));
    r.id.title = n.node_id || '';
    setT(r.onchain, sat(n.onchain_sat));
    setT(r.inchannel, sat(n.channel_sat));
    r.dev.hidden = !n.dev;
    r.tower.hidden = !n.tower;
    setT(r.error, n.alive ? '' : n.error || 'not answering');
    r.error.hidden = !!n.alive;
    r.card.classList.toggle('dead', !n.alive);
    r.card.classList.toggle('selected', n.name === detailName);
  }

  /** Refills every node <select> when the node set changes, keeping each selection. */
  function refillSelects(snap) {
    const names = snap.nodes.map((n) => n.name);
    const key = names.join('\n');
    if (key === nodeSetKey) return;
    nodeSetKey = key;
    for (const s of document.querySelectorAll('select.node-select')) {
      const keep = s.value;
      s.replaceChildren(...names.map((nm) => el('option', { value: nm, text: nm })));
      if (names.includes(keep)) s.value = keep;
      else if (names.length) s.value = s.dataset.default === 'last' ? names[names.length - 1] : names[0];
    }
  }

  // ---------------------------------------------------------------- node detail

  let detailName = null; // the node shown in #detail
  let detailData = null; // its last /api/node answer
  let detailInflight = false, detailLast = 0, detailTimer = 0;
  const armed = new Map(); // "action:channel_id" -> time armed (second click confirms)
  const busy = new Set(); // channel actions in flight

  function openDetail(name) {
    const changed = name !== detailName;
    detailName = name;
    $('detail').hidden = false;
    setT($('detail-name'), name);
    if (changed) { detailData = null; $('detail-body').replaceChildren(el('p', { class: 'muted', text: 'loading…' })); setT($('detail-error'), ''); }
    markSelected();
    fetchDetail();
  }

  function closeDetail() {
    detailName = null;
    detailData = null;
    $('detail').hidden = true;
    clearTimeout(detailTimer);
    detailTimer = 0;
    markSelected();
  }

  function markSelected() {
    for (const [name, r] of nodeEls) r.g.classList.toggle('selected', name === detailName);
    for (const [name, r] of cardEls) r.card.classList.toggle('selected', name === detailName);
  }

  /** Called on every snapshot: refreshes the open detail at most once per second. */
  function detailOnSnapshot() {
    if (!detailName || detailTimer) return;
    const wait = 1000 - (performance.now() - detailLast);
    if (wait <= 0) fetchDetail();
    else detailTimer = setTimeout(() => { detailTimer = 0; fetchDetail(); }, wait);
  }

  async function fetchDetail() {
    const name = detailName;
    if (!name || detailInflight) return;
    detailInflight = true;
    detailLast = performance.now();
    setT($('detail-status'), 'refreshing…');
    try {
      const res = await fetch('/api/node/' + encodeURIComponent(name), { cache: 'no-store' });
      const j = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
      if (name !== detailName) return;
      if (!res.ok || j.ok === false) { setT($('detail-error'), j.error || `HTTP ${res.status}`); return; }
      setT($('detail-error'), '');
      detailData = j;
      renderDetail();
    } catch (e) {
      if (name === detailName) setT($('detail-error'), 'cannot reach the server: ' + e.message);
    } finally {
      detailInflight = false;
      if (name === detailName) setT($('detail-status'), 'updated ' + new Date().toLocaleTimeString('en-GB'));
    }
  }

  /** A table from header names and rows of cells (strings or elements). */
  function table(cls, heads, rows) {
    return el('table', { class: 'tbl ' + cls },
      el('thead', {}, el('tr', {}, ...heads.map((h) => el('th', { text: h })))),
      el('tbody', {}, ...rows));
  }
  const td = (x, cls) => el('td', cls ? { class: cls } : {}, x == null ? '' : typeof x === 'object' ? x : String(x));
  const section = (title, ...kids) => el('section', { class: 'd-sec' }, el('h3', { text: title }), ...kids);

  /** Flattens nested objects/arrays into [key path, value] rows. */
  function flatten(v, prefix, out) {
    if (v !== null && typeof v === 'object') {
      const entries = Array.isArray(v) ? v.map((x, i) => [`[${i}]`, x]) : Object.entries(v).map(([k, x]) => [(prefix ? '.' : '') + k, x]);
      if (!entries.length) out.push([prefix, Array.isArray(v) ? '(none)' : '{}']);
      for (const [k, x] of entries) flatten(x, prefix + k, out);
    } else {
      const num = typeof v === 'number' && /_(m?sat)$/.test(prefix);
      const hex = typeof v === 'string' && /^([0-9a-f]{20,})(:\d+)?$/.exec(v); // ids and outpoints, shortened
      out.push([prefix, num ? nf.format(v) : v === null ? '–' : hex ? shortId(hex[1]) + (hex[2] || '') : String(v)]);
    }
    return out;
  }

  /** Rebuilds the detail sheet from detailData (keeps the scroll position). */
  function renderDetail() {
    const d = detailData;
    if (!d) return;
    const info = d.info || {};
    const node = nodeIndex.get(d.name) || {};
    const dev = info.dev === true || (info.dev === undefined && node.dev);
    const body = $('detail-body');
    const scroll = body.scrollTop;
    const parts = [];

    parts.push(el('div', { class: 'd-info' },
      el('div', {}, el('span', { class: 'k', text: 'node id ' }), el('code', { class: 'nodeid', text: info.node_id || node.node_id || '' })),
      el('div', { text: [`alias ${info.alias || node.alias || ''}`, `height ${info.block_height ?? node.height ?? '–'}`,
        `${info.num_peers ?? node.num_peers ?? 0} peers`, `${info.num_active_channels ?? '–'} active / ${info.num_pending_channels ?? '–'} pending / ${info.num_closing_channels ?? '–'} closing`,
        dev ? 'dev' : '', node.tower ? 'tower' : ''].filter(Boolean).join(' · ') })));

    // Channels, with the closing outputs of closing ones and the close/force/breach buttons.
    const chans = list(d.channels, 'channels');
    const rows = [];
    for (const c of chans) {
      const open = !['closed', 'closing', 'abandoned'].includes(c.state);
      const acts = el('td', { class: 'acts' });
      if (open) {
        acts.append(chanButton('close', c, 'close', false), chanButton('force', c, 'force close', true));
        if (dev) acts.append(chanButton('breach', c, 'broadcast revoked', true));
      }
      rows.push(el('tr', { 'data-channel-id': c.channel_id, 'data-state': c.state },
        td(peerName(c.peer), 'nw'), td(c.state, 'state'), td(msatSat(c.local_msat), 'num'), td(msatSat(c.remote_msat), 'num'),
        td(c.pending_htlcs || 0, 'num'), td(el('span', { class: 'nw', text: c.short_channel_id || shortId(c.channel_id), title: 'channel ' + c.channel_id })), acts));
      if (c.closing || c.close_reason) {
        const cl = c.closing || {};
        const outs = (cl.outputs || []).map((o) => el('li', { class: 'out', 'data-state': o.state },
          `${o.kind} ${sat(o.amount_sat)} · ${o.state}` + (o.blocks_left != null ? ` · ${o.blocks_left} blocks left` : '') +
          (o.spendable_at != null ? ` (at ${o.spendable_at})` : '')));
        const head = [cl.kind, cl.resolved ? 'resolved' : cl.kind ? 'unresolved' : '', c.close_reason,
          cl.claim_fees_sat ? `claim fees ${sat(cl.claim_fees_sat)}` : ''].filter(Boolean).join(' · ');
        rows.push(el('tr', { class: 'closing-row' + (isBreach(cl.kind) ? ' breach' : '') },
          el('td', { colspan: 7 }, el('div', { text: head }), outs.length ? el('ul', { class: 'outs' }, ...outs) : null)));
      }
    }
    parts.push(section(`Channels (${chans.length})`, chans.length
      ? table('channels', ['peer', 'state', 'local', 'remote', 'HTLCs', 'scid', ''], rows) : el('p', { class: 'muted', text: 'none' })));

    // Payments, invoices, forwards: newest first, at most 50 each.
    const newest = (a) => a.slice(-50).reverse();
    const more = (a) => (a.length > 50 ? el('p', { class: 'muted', text: `${a.length - 50} older not shown` }) : null);
    const pays = list(d.payments, 'payments');
    parts.push(section(`Payments (${pays.length})`, pays.length ? table('payments', ['hash', 'to', 'amount', 'fee', 'status', 'failure', 'time'],
      newest(pays).map((p) => el('tr', { 'data-status': p.status },
        td(shortId(p.payment_hash)), td(peerName(p.destination)), td(msatSat(p.amount_msat), 'num'), td(feeSat(p.fee_msat), 'num'),
        td(p.status, 'state'), td(p.failure || '', 'wrap'), td(timeText(p.completed_at || p.created_at), 'nw')))) : el('p', { class: 'muted', text: 'none' }), more(pays)));

    const invs = list(d.invoices, 'invoices');
    parts.push(section(`Invoices (${invs.length})`, invs.length ? table('invoices', ['hash', 'amount', 'status', 'received', 'description', 'bolt11'],
      newest(invs).map((i) => el('tr', { 'data-status': i.status },
        td(shortId(i.payment_hash)), td(msatSat(i.amount_msat), 'num'), td(i.status, 'state'),
        td(i.received_msat != null ? msatSat(i.received_msat) : '', 'num'), td(i.description || '', 'wrap'),
        td(el('span', { class: 'bolt11', text: shortId(i.bolt11), title: i.bolt11 || '' }))))) : el('p', { class: 'muted', text: 'none' }), more(invs)));

    const fwds = list(d.forwards, 'forwards');
    const chanName = (id) => {
      const c = (fulmen.state ? fulmen.state.channels : []).find((x) => x.channel_id === id);
      return c ? `${c.a}–${c.b}` : shortId(id);
    };
    const earned = fwds.filter((f) => f.status === 'settled').reduce((s, f) => s + (Number(f.fee_msat) || 0), 0);
    parts.push(section(`Forwards (${fwds.length}${fwds.length ? ', earned ' + feeSat(earned) : ''})`, fwds.length
      ? table('forwards', ['in', 'out', 'in amount', 'out amount', 'fee', 'status', 'failure'],
        newest(fwds).map((f) => el('tr', { 'data-status': f.status },
          td(chanName(f.in_channel)), td(chanName(f.out_channel)), td(msatSat(f.in_msat), 'num'), td(msatSat(f.out_msat), 'num'),
          td(feeSat(f.fee_msat), 'num'), td(f.status, 'state'), td(f.failure || '', 'wrap')))) : el('p', { class: 'muted', text: 'none' }), more(fwds)));

    const bal = flatten(d.balance || {}, '', []);
    parts.push(section('Balance', table('balance', ['', ''], bal.map(([k, v]) => el('tr', {}, td(k, 'k'), td(v, 'num'))))));

    body.replaceChildren(...parts);
    body.scrollTop = scroll;
  }

  /** A channel action button; `confirm` ones need a second click within 4 s. */
  function chanButton(kind, c, label, confirm) {
    const key = kind + ':' + c.channel_id;
    const t = armed.get(key);
    const isArmed = t && performance.now() - t < 4000;
    const b = el('button', { type: 'button', class: 'ch-' + kind + (isArmed ? ' armed' : ''), 'data-channel-id': c.channel_id,
      text: isArmed ? 'click again to confirm' : label, disabled: busy.has(key) });
    b.addEventListener('click', () => {
      const now = performance.now();
      if (confirm && !(armed.get(key) && now - armed.get(key) < 4000)) {
        armed.set(key, now);
        b.classList.add('armed');
        b.textContent = 'click again to confirm';
        setTimeout(() => { if (armed.get(key) === now) { armed.delete(key); b.classList.remove('armed'); b.textContent = label; } }, 4000);
        return;
      }
      armed.delete(key);
      const node = detailName;
      const body = kind === 'breach' ? { action: 'breach', node, channel_id: c.channel_id }
        : { action: 'close', node, channel_id: c.channel_id, force: kind === 'force' };
      busy.add(key);
      b.textContent = label;
      b.classList.remove('armed');
      runAction(body, b).finally(() => { busy.delete(key); if (detailName === node) fetchDetail(); });
    });
    return b;
  }

  // ---------------------------------------------------------------- actions

  /** POSTs an action; shows a summary in #action-result or the error in #action-error. */
  async function runAction(body, button) {
    const result = $('action-result'), error = $('action-error');
    result.textContent = ''; result.className = ''; error.textContent = '';
    if (button) button.disabled = true;
    try {
      const res = await fetch('/api/action', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const text = await res.text();
      let j;
      try { j = JSON.parse(text); } catch { j = { ok: false, error: text || `HTTP ${res.status}` }; }
      if (!res.ok || !j.ok) { error.textContent = j.error || `HTTP ${res.status}`; return null; }
      const pay = body.action === 'pay_invoice' ? j.result && j.result.payment : ['pay', 'keysend'].includes(body.action) ? j.result : null;
      if (pay && pay.status === 'failed') result.className = 'warn';
      result.textContent = summarize(body, j.result || {});
      return j.result;
    } catch (e) {
      error.textContent = 'cannot reach the server: ' + e.message;
      return null;
    } finally {
      if (button) button.disabled = false;
    }
  }

  /** One line about an action's result. */
  function summarize(b, r) {
    const payText = (p) => (p ? `${p.status} · ${msatSat(p.amount_msat)} · fee ${feeSat(p.fee_msat)}${p.failure ? ' · ' + p.failure : ''}` : 'sent');
    switch (b.action) {
      case 'pay_invoice': return `${b.from} → ${b.to}: ${payText(r.payment)}`;
      case 'pay': return `${b.node} paid: ${payText(r)}`;
      case 'keysend': return `keysend ${b.node} → ${b.destination}: ${payText(r)}`;
      case 'invoice': return `invoice on ${b.node} for ${msatSat(b.amount_msat)} (${shortId(r.payment_hash)}) — bolt11 below`;
      case 'open': return `opening ${b.node} → ${b.peer}, ${sat(b.capacity_sat)}` + (r.channel_id ? ` · channel ${shortId(r.channel_id)}` : '') + ' — mine blocks to confirm';
      case 'close': return `${b.force ? 'force ' : ''}closing ${shortId(b.channel_id)} on ${b.node}` + (r.closing_txid ? ` · tx ${shortId(r.closing_txid)}` : '');
      case 'mine': return `mined ${b.blocks} block${b.blocks === 1 ? '' : 's'}` + (r.height != null ? ` · height ${nf.format(r.height)}` : '');
      case 'breach': return `${b.node} broadcast revoked commitment` + (r.commitment_number != null ? ` #${r.commitment_number}` : '') + (r.txid ? ` · tx ${shortId(r.txid)}` : '');
      default: return 'done';
    }
  }

  const val = (id) => $(id).value;
  /** Sat from a number input, as msat (integer), or null. */
  function msatOf(id, min) {
    const v = Number($(id).value);
    if (!Number.isFinite(v) || v < min) { $('action-error').textContent = `${$(id).getAttribute('aria-label') || id}: a number ≥ ${min} please`; return null; }
    return Math.round(v * 1000);
  }

  /** Wires a form's submit to an action body built by `make` (null: invalid input). */
  function onSubmit(formId, buttonId, make, after) {
    $(formId).addEventListener('submit', async (e) => {
      e.preventDefault();
      $('action-result').textContent = '';
      $('action-error').textContent = '';
      const body = make();
      if (!body) return;
      const r = await runAction(body, $(buttonId));
      if (r && after) after(r);
    });
  }

  function wireActions() {
    onSubmit('form-pay', 'pay-submit', () => {
      const m = msatOf('pay-amount', 0.001);
      return m == null ? null : { action: 'pay_invoice', from: val('pay-from'), to: val('pay-to'), amount_msat: m };
    });
    onSubmit('form-invoice', 'invoice-submit', () => {
      const m = msatOf('invoice-amount', 0.001);
      return m == null ? null : { action: 'invoice', node: val('invoice-node'), amount_msat: m, description: 'from the web page' };
    }, (r) => {
      $('invoice-bolt11').value = r.bolt11 || '';
      if (r.bolt11) $('paystr-bolt11').value = r.bolt11;
    });
    onSubmit('form-paystr', 'paystr-submit', () => {
      const s = val('paystr-bolt11').trim();
      if (!s) { $('action-error').textContent = 'paste a bolt11 invoice first'; return null; }
      return { action: 'pay', node: val('paystr-node'), bolt11: s };
    });
    onSubmit('form-keysend', 'keysend-submit', () => {
      const m = msatOf('keysend-amount', 0.001);
      return m == null ? null : { action: 'keysend', node: val('keysend-from'), destination: val('keysend-to'), amount_msat: m };
    });
    onSubmit('form-open', 'open-submit', () => {
      const cap = msatOf('open-capacity', 1), push = msatOf('open-push', 0);
      return cap == null || push == null ? null
        : { action: 'open', node: val('open-from'), peer: val('open-to'), capacity_sat: Math.round(cap / 1000), push_msat: push };
    });
    onSubmit('form-mine', 'mine-submit', () => {
      const n = Math.round(Number(val('mine-blocks')));
      if (!(n >= 1)) { $('action-error').textContent = 'blocks: 1 or more please'; return null; }
      return { action: 'mine', blocks: n };
    });
    for (const b of document.querySelectorAll('.mine-quick')) {
      b.addEventListener('click', () => runAction({ action: 'mine', blocks: Number(b.dataset.blocks) }, b));
    }
    $('detail-close').addEventListener('click', closeDetail);
    document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && detailName) closeDetail(); });
  }

  // ---------------------------------------------------------------- snapshots and live stream

  /** Draws one snapshot (the SSE handler, the initial fetch and tests all call this). */
  function applySnapshot(snap) {
    const t0 = performance.now();
    snap = Object.assign({ nodes: [], channels: [], payments: [], chain: {} }, snap);
    for (const k of ['nodes', 'channels', 'payments']) if (!Array.isArray(snap[k])) snap[k] = [];
    const first = !fulmen.state;
    fulmen.state = snap;
    nameById = new Map(snap.nodes.map((n) => [n.node_id, n.name]));
    nodeIndex = new Map(snap.nodes.map((n) => [n.name, n]));
    renderHeader(snap);
    renderGraph(snap);
    renderCards(snap);
    refillSelects(snap);
    renderPayments(snap, first);
    detailOnSnapshot();
    const ms = performance.now() - t0;
    stats.snapshots++;
    stats.lastApplyMs = ms;
    stats.maxApplyMs = Math.max(stats.maxApplyMs, ms);
    if (first) document.body.dataset.ready = '1';
  }

  function setLive(on) {
    const e = $('live');
    setA(e, 'data-state', on ? 'connected' : 'disconnected');
    setT(e, on ? 'connected' : 'disconnected');
  }

  /** The SSE stream; EventSource reconnects by itself unless the server refused it outright. */
  function connect() {
    const es = new EventSource('/api/events');
    es.addEventListener('open', () => setLive(true));
    es.addEventListener('state', (e) => {
      setLive(true);
      try { applySnapshot(JSON.parse(e.data)); } catch (err) { console.error('bad snapshot', err); }
    });
    es.addEventListener('error', () => {
      setLive(false);
      if (es.readyState === EventSource.CLOSED) setTimeout(connect, 3000);
    });
  }

  /** Re-positions everything when the graph area changes size (positions in unit space). */
  function watchSize() {
    let queued = false;
    new ResizeObserver(() => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => {
        queued = false;
        if (measure() && fulmen.state) renderGraph(fulmen.state);
      });
    }).observe($('graph-wrap'));
  }

  wireActions();
  measure();
  watchSize();
  connect();
  fetch('/api/state', { cache: 'no-store' })
    .then((r) => (r.ok ? r.json() : null))
    .then((s) => { if (s && !fulmen.state) applySnapshot(s); })
    .catch(() => {});
})();
