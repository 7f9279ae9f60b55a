// The bulkhead web UI: one page, hash routes (#/graph, #/flows, #/events, #/policies,
// #/learn), plain JavaScript over the REST API (/api/v1) with a bearer token. No build
// step: this file is served as written. Every value from the API reaches the page as
// text (textContent), never as HTML.
'use strict';

(function () {
  const API = '/api/v1';
  const TOKEN_KEY = 'bulkhead.token';
  const GRAPH_EVERY_MS = 5000;
  const TABLE_EVERY_MS = 10000;
  // Labels that differ between replicas or revisions of one workload: left out of an
  // identity, as the store does (crates/store/src/identity.rs).
  const PER_INSTANCE = [
    'pod-template-hash', 'pod-template-generation', 'controller-revision-hash',
    'controller-uid', 'statefulset.kubernetes.io/pod-name', 'apps.kubernetes.io/pod-index',
    'batch.kubernetes.io/controller-uid', 'batch.kubernetes.io/job-completion-index',
  ];

  // ---- the token ---------------------------------------------------------------------

  // `?token=` is read once, kept for the tab's session, and removed from the address.
  function takeTokenFromUrl() {
    const u = new URL(window.location.href);
    // A query string decodes `+` as a blank, but a token holds no blanks and a base64
    // one (`head -c 32 /dev/urandom | base64`, as the docs make it) often holds `+`.
    const t = (u.searchParams.get('token') || '').replace(/ /g, '+');
    if (t) {
      sessionStorage.setItem(TOKEN_KEY, t);
      u.searchParams.delete('token');
      history.replaceState(null, '', u.pathname + u.search + u.hash);
    }
  }
  function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

  class Unauthorized extends Error {}

  async function api(path, opts) {
    opts = opts || {};
    const headers = Object.assign({ Authorization: 'Bearer ' + token() }, opts.headers || {});
    const r = await fetch(API + path, Object.assign({}, opts, { headers }));
    const text = await r.text();
    if (r.status === 401) {
      throw new Unauthorized(text);
    }
    let body = null;
    if (text) {
      try { body = JSON.parse(text); } catch (_) { body = text; }
    }
    if (!r.ok) {
      let msg = (body && body.error) || text || r.statusText;
      if (body && Array.isArray(body.diagnostics)) {
        for (const d of body.diagnostics) {
          msg += `\n${d.file}:${d.line}:${d.column}: ${d.path ? d.path + ': ' : ''}${d.message}`;
        }
      }
      throw new Error(`${r.status}: ${msg}`);
    }
    return body;
  }

  // ---- DOM helpers -------------------------------------------------------------------

  function h(tag, attrs) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'value') el.value = v;
      else if (k === 'checked') el.checked = !!v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (let i = 2; i < arguments.length; i++) add(el, arguments[i]);
    return el;
  }
  function add(el, ...cs) {
    for (const c of cs) {
      if (c === undefined || c === null || c === false) continue;
      if (Array.isArray(c)) { c.forEach((x) => add(el, x)); continue; }
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }
  function table(cols, rows, rowAttrs) {
    return h('table', {},
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, c.title)))),
      h('tbody', {}, rows.map((r) => h('tr', rowAttrs ? rowAttrs(r) : {},
        cols.map((c) => h('td', { class: c.cls }, c.cell(r)))))));
  }
  function errorBox(e) { return h('div', { class: 'error-box' }, String(e.message || e)); }
  function setStatus(msg, isError) {
    const s = document.getElementById('status');
    s.textContent = msg;
    s.className = isError ? 'error' : '';
  }
  function fmtTime(ms) {
    if (!ms && ms !== 0) return '';
    return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }
  function shortTime(rfc3339) { return (rfc3339 || '').replace('T', ' ').replace(/\.\d+Z$/, 'Z'); }

  // ---- routes ------------------------------------------------------------------------

  function parseHash() {
    const raw = window.location.hash.replace(/^#\/?/, '');
    const q = raw.indexOf('?');
    const page = (q < 0 ? raw : raw.slice(0, q)) || 'graph';
    const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
    return { page, params };
  }
  function go(page, params) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== undefined && v !== null && v !== '' && v !== false) qs.set(k, v === true ? '1' : v);
    }
    const s = qs.toString();
    window.location.hash = '#/' + page + (s ? '?' + s : '');
  }

  let current = null; // { name, page } of the page on screen
  const timers = [];
  // Run `f` every `ms` while the page is on screen, never twice at once (a slow answer
  // is not asked for again before it arrives).
  function every(ms, f) {
    let busy = false;
    timers.push(setInterval(async () => {
      if (busy) return;
      busy = true;
      try { await f(); } finally { busy = false; }
    }, ms));
  }
  function stopTimers() { while (timers.length) clearInterval(timers.pop()); }

  const PAGES = {};

  async function route() {
    const { page, params } = parseHash();
    const P = PAGES[page] || PAGES.graph;
    for (const a of document.querySelectorAll('#nav a')) {
      a.classList.toggle('active', a.dataset.page === page);
    }
    if (!token()) { showLogin(''); return; }
    if (current && current.name === page && current.page.update) {
      current.page.update(params);
      return;
    }
    stopTimers();
    if (current && current.page.destroy) current.page.destroy();
    const main = clear(document.getElementById('main'));
    main.className = page === 'graph' ? 'full' : '';
    main.dataset.page = page;
    const instance = P();
    current = { name: page, page: instance };
    try {
      await instance.mount(main, params);
    } catch (e) {
      handleError(e, main);
    }
  }

  function handleError(e, where) {
    if (e instanceof Unauthorized) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin('The server refused the token.');
      return;
    }
    setStatus('error: ' + (e.message || e), true);
    if (where) add(where, errorBox(e));
  }

  function showLogin(message) {
    stopTimers();
    current = null;
    const main = clear(document.getElementById('main'));
    main.className = '';
    const input = h('input', { type: 'password', id: 'token', placeholder: 'token', autocomplete: 'off' });
    add(main, h('form', {
      class: 'login', onsubmit: (ev) => {
        ev.preventDefault();
        if (input.value.trim()) {
          sessionStorage.setItem(TOKEN_KEY, input.value.trim());
          route();
        }
      },
    },
    h('h2', {}, 'bulkhead'),
    message ? h('div', { class: 'error-box' }, message) : null,
    h('p', {}, 'Give the API token (the first line of the server\'s token file), or open this page as /ui/?token=TOKEN. It is kept for this tab only.'),
    input,
    h('button', { class: 'primary', type: 'submit' }, 'Open')));
  }

  // ---- identities and groups ---------------------------------------------------------

  // `ns{k=v,...}` for a workload's labels, as the store names a conversation's end.
  function identityKey(namespace, labels) {
    const keys = Object.keys(labels || {}).filter((k) => !PER_INSTANCE.includes(k)).sort();
    return namespace + '{' + keys.map((k) => k + '=' + labels[k]).join(',') + '}';
  }
  function peerIdentity(p) {
    if (!p || !p.namespace) return (p && p.entity) || 'world';
    return identityKey(p.namespace, p.labels || {});
  }
  function parseIdentity(id) {
    const m = /^([^{]*)\{(.*)\}$/.exec(id);
    if (!m) return { namespace: null, labels: {} };
    const labels = {};
    for (const kv of m[2] ? m[2].split(',') : []) {
      const i = kv.indexOf('=');
      labels[kv.slice(0, i)] = kv.slice(i + 1);
    }
    return { namespace: m[1], labels };
  }
  function identityLabel(id) {
    const p = parseIdentity(id);
    if (p.namespace === null) return id;
    const vals = Object.values(p.labels);
    return p.namespace + ': ' + (vals.length ? vals.join(' · ') : '(no labels)');
  }
  function service(protocol, port) {
    if (!port) return protocol;
    return protocol + '/' + port;
  }

  // Everything the graph and explain need to know about the inventory.
  async function inventory() {
    const [workloads, groups] = await Promise.all([api('/workloads'), api('/groups')]);
    const byIdentity = new Map();
    for (const w of workloads) {
      const k = identityKey(w.namespace, w.labels);
      let e = byIdentity.get(k);
      if (!e) { e = { workloads: [], groups: new Set() }; byIdentity.set(k, e); }
      e.workloads.push(w.namespace + '/' + w.name);
      for (const g of w.groups || []) e.groups.add(g);
    }
    const modes = new Map(groups.map((g) => [g.name, String(g.mode)]));
    return { workloads, groups, byIdentity, modes };
  }

  // ---- explain -----------------------------------------------------------------------

  function ruleText(r) {
    if (!r) return '';
    const name = r.rule_name ? ` "${r.rule_name}"` : '';
    const o = r.origin || {};
    const at = typeof o === 'string' ? o : `${o.file}:${o.line}:${o.column}`;
    return `${r.kind} ${r.policy} ${r.direction} rule ${r.rule}${name} (${r.action}) at ${at}`;
  }
  // The side that decided: the one that denied; for an allow, the one a rule decided
  // (as `bulkhead analyze replay` reports it).
  function decidingSide(x) {
    if (!x.allowed) return x.egress.allowed ? x.ingress : x.egress;
    if (x.ingress.rule || (!x.egress.rule && x.ingress.decided_at === 'mode')) return x.ingress;
    return x.egress;
  }
  function sideDecision(s) {
    if (s.rule) return ruleText(s.rule);
    if (s.decided_at === 'mode') return `${s.mode} mode of group ${s.group || '(none: the ungrouped mode)'}`;
    if (s.decided_at === 'network-policy') return 'isolated by NetworkPolicy ' + (s.isolated_by || []).join(', ');
    return s.decided_at;
  }
  function renderExplanation(x) {
    const verdict = !x.allowed ? 'denied' : x.violation ? 'violation' : 'allowed';
    const words = { denied: 'DENIED', violation: 'ALLOWED (violation: Monitor mode)', allowed: 'ALLOWED' };
    const d = decidingSide(x);
    return h('div', { class: 'explain', 'data-verdict': verdict },
      h('div', { class: 'verdict ' + verdict }, `${words[verdict]}: ${x.src} → ${x.dst} ${x.service}`),
      x.request ? h('div', {}, 'request: ' + x.request) : null,
      h('div', { class: 'deciding' },
        h('div', { class: 'muted' }, 'Decided by ' + d.subject),
        h('div', { class: 'deciding-rule' }, sideDecision(d))),
      x.l7_enforced ? h('div', { class: 'muted' }, 'Opens at layer 4; the L7 proxy decides each request.') : null,
      (x.sensors || []).length ? h('div', {}, 'Sensors: ' + x.sensors.join('; ')) : null,
      [x.egress, x.ingress].map((s) => h('div', {},
        h('h3', {}, `${s.subject}: ${s.allowed ? 'allows' : 'denies'}`),
        h('ul', {}, (s.text || []).map((t) => h('li', {}, t))))));
  }
  async function explain(src, dst, svc, request) {
    const qs = new URLSearchParams({ src, dst, service: svc });
    if (request) qs.set('request', request);
    return api('/explain?' + qs.toString());
  }

  // ---- the graph ---------------------------------------------------------------------

  const GRAPH_STYLE = [
    { selector: 'node', style: {
      label: 'data(label)', 'font-size': 10, 'text-valign': 'bottom', 'text-margin-y': 4,
      'text-wrap': 'wrap', 'text-max-width': 150, color: '#1f2933',
      'background-color': '#4a6fa5', width: 20, height: 20 } },
    { selector: 'node.outside', style: { 'background-color': '#7b8794', shape: 'diamond' } },
    { selector: ':parent', style: {
      'background-color': '#f1f5f9', 'border-color': '#9aa5b1', 'border-width': 2,
      'text-valign': 'top', 'text-halign': 'center', 'font-size': 12, 'font-weight': 'bold',
      shape: 'round-rectangle', padding: 16 } },
    { selector: ':parent.mode-Protect', style: { 'border-color': '#2f6f3e' } },
    { selector: ':parent.mode-Monitor', style: { 'border-color': '#b7791f', 'border-style': 'dashed' } },
    { selector: ':parent.mode-Discover', style: { 'border-color': '#3b82c4', 'border-style': 'dotted' } },
    { selector: 'edge', style: {
      width: 2, 'line-color': '#8796a8', 'target-arrow-color': '#8796a8',
      'target-arrow-shape': 'triangle', 'curve-style': 'bezier', label: 'data(label)',
      'font-size': 9, 'text-wrap': 'wrap', 'text-rotation': 'autorotate',
      'text-background-color': '#ffffff', 'text-background-opacity': 0.85,
      'text-background-padding': 2, color: '#323f4b' } },
    { selector: 'edge.violation', style: { width: 5, 'line-color': '#ff8c00', 'target-arrow-color': '#ff8c00', color: '#8a4b00' } },
    { selector: 'edge.denied', style: { width: 6, 'line-color': '#d62728', 'target-arrow-color': '#d62728', color: '#9b1c1c' } },
    { selector: 'edge:selected', style: { 'overlay-color': '#1f6feb', 'overlay-opacity': 0.2, 'overlay-padding': 6 } },
  ];

  // Conversations (identity -> identity) as elements: a compound node per group, an
  // identity node inside the (first) group that selects its workloads, one edge per
  // identity pair and service.
  function graphElements(convs, inv) {
    const nodes = new Map();
    const edges = [];
    function node(id) {
      if (nodes.has(id)) return;
      const info = inv.byIdentity.get(id);
      const groups = info ? [...info.groups].sort() : [];
      const outside = parseIdentity(id).namespace === null;
      let parent;
      if (groups.length) {
        parent = 'group:' + groups[0];
        if (!nodes.has(parent)) {
          const mode = inv.modes.get(groups[0]) || '';
          nodes.set(parent, { data: { id: parent, label: `${groups[0]} (${mode})`, group: groups[0] }, classes: 'group mode-' + mode });
        }
      }
      const n = info ? info.workloads.length : 0;
      const label = identityLabel(id) + (n ? `\n${n} workload${n === 1 ? '' : 's'}` : '') +
        (groups.length > 1 ? `\nalso in ${groups.slice(1).join(', ')}` : '');
      nodes.set(id, { data: { id, label, parent, identity: id }, classes: outside ? 'outside' : 'identity' });
    }
    for (const c of convs) {
      node(c.src);
      node(c.dst);
      const svc = service(c.protocol, c.port);
      const status = c.denied > 0 ? 'denied' : c.violations > 0 ? 'violation' : 'allowed';
      let label = svc + (c.app ? ' ' + c.app : '') + `\n${c.connections} conn`;
      if (c.denied) label += `, ${c.denied} denied`;
      if (c.violations) label += `, ${c.violations} violations`;
      edges.push({
        data: {
          id: `${c.src}>${c.dst}|${svc}|${c.app || ''}`, source: c.src, target: c.dst, label,
          service: svc, protocol: c.protocol, port: c.port, app: c.app || '', status,
          connections: c.connections, denied: c.denied, violations: c.violations,
          requests: c.requests, bytes: c.bytes, first: c.first_ms, last: c.last_ms,
        },
        classes: status,
      });
    }
    return { nodes: [...nodes.values()], edges };
  }

  // A name `explain` accepts for one end of a conversation: a workload of the identity,
  // else the address a recorded flow between the two ends had.
  async function endpoints(edge, inv) {
    const s = inv.byIdentity.get(edge.source);
    const d = inv.byIdentity.get(edge.target);
    let src = s && s.workloads[0];
    let dst = d && d.workloads[0];
    if (!src || !dst) {
      const known = src || dst;
      const qs = new URLSearchParams({ limit: '500' });
      if (known) qs.set('workload', known);
      const flows = await api('/flows?' + qs.toString());
      for (const f of flows.reverse()) {
        if (peerIdentity(f.src) === edge.source && peerIdentity(f.dst) === edge.target) {
          src = src || f.src.workload || f.src.ip;
          dst = dst || f.dst.workload || f.dst.ip;
          break;
        }
      }
    }
    if (!src || !dst) throw new Error('no workload or address is known for an end of this connection');
    return { src, dst };
  }

  PAGES.graph = function () {
    let cy = null;
    let inv = null;
    let shape = '';
    let selected = null;
    let panel;
    let edgeTable;
    let explainBox;
    let filterNs = '';
    let onlyViolations = false;

    async function load() {
      const qs = new URLSearchParams();
      if (filterNs) qs.set('namespace', filterNs);
      if (onlyViolations) qs.set('violations', 'true');
      const [convs, inventoryNow] = await Promise.all([api('/graph?' + qs.toString()), inventory()]);
      inv = inventoryNow;
      const els = graphElements(convs, inv);
      const newShape = JSON.stringify([els.nodes.map((n) => [n.data.id, n.data.parent || '']).sort(), els.edges.map((e) => e.data.id).sort()]);
      if (newShape !== shape) {
        shape = newShape;
        cy.elements().remove();
        cy.add(els.nodes);
        cy.add(els.edges);
        const n = cy.nodes().length;
        cy.nodes().forEach((node, i) => {
          node.position({ x: 300 * Math.cos((2 * Math.PI * i) / Math.max(n, 1)), y: 300 * Math.sin((2 * Math.PI * i) / Math.max(n, 1)) });
        });
        cy.layout({
          name: 'cose', animate: false, randomize: false, fit: true, padding: 30,
          nodeDimensionsIncludeLabels: true, idealEdgeLength: 120, nodeRepulsion: 60000,
        }).run();
      } else {
        for (const e of els.edges) {
          const el = cy.getElementById(e.data.id);
          el.data(e.data);
          el.classes(e.classes);
        }
        for (const nd of els.nodes) {
          const el = cy.getElementById(nd.data.id);
          el.data('label', nd.data.label);
          el.classes(nd.classes);
        }
      }
      renderEdgeTable(els.edges);
      const counts = els.edges.reduce((a, e) => { a[e.data.status]++; return a; }, { allowed: 0, violation: 0, denied: 0 });
      setStatus(`${els.nodes.filter((x) => x.data.identity).length} identities, ${els.edges.length} connections ` +
        `(${counts.denied} denied, ${counts.violation} violations) · ${new Date().toLocaleTimeString()}`);
      if (selected) select(selected, false);
    }

    function renderEdgeTable(edges) {
      const order = { denied: 0, violation: 1, allowed: 2 };
      const rows = edges.slice().sort((a, b) => order[a.data.status] - order[b.data.status] || b.data.connections - a.data.connections);
      clear(edgeTable);
      add(edgeTable, table([
        { title: '', cell: (e) => h('span', { class: 'badge ' + (e.data.status === 'denied' ? 'deny' : e.data.status === 'violation' ? 'violation' : 'allow') }, e.data.status) },
        { title: 'from → to', cell: (e) => `${identityLabel(e.data.source)} → ${identityLabel(e.data.target)}` },
        { title: 'service', cell: (e) => e.data.service + (e.data.app ? ' ' + e.data.app : '') },
        { title: 'conn', cell: (e) => String(e.data.connections) },
      ], rows, (e) => ({
        'data-edge': e.data.id, 'data-status': e.data.status,
        class: 'edge ' + e.data.status + (e.data.id === selected ? ' selected' : ''),
        onclick: () => go('graph', { edge: e.data.id, namespace: filterNs, violations: onlyViolations }),
      })));
    }

    async function select(id, fresh) {
      cy.elements().unselect();
      const el = cy.getElementById(id);
      for (const tr of edgeTable.querySelectorAll('tr.edge')) tr.classList.toggle('selected', tr.dataset.edge === id);
      if (!el || el.empty() || !el.isEdge()) {
        clear(explainBox);
        add(explainBox, h('p', { class: 'muted' }, 'That connection is not in the graph (any more).'));
        return;
      }
      el.select();
      if (!fresh) return;
      const e = el.data();
      clear(explainBox);
      add(explainBox, h('h3', {}, `${identityLabel(e.source)} → ${identityLabel(e.target)} ${e.service}`),
        h('dl', { class: 'kv' },
          h('dt', {}, 'connections'), h('dd', {}, String(e.connections)),
          h('dt', {}, 'denied'), h('dd', {}, String(e.denied)),
          h('dt', {}, 'violations'), h('dd', {}, String(e.violations)),
          h('dt', {}, 'L7 requests'), h('dd', {}, String(e.requests)),
          h('dt', {}, 'first / last'), h('dd', {}, fmtTime(e.first) + ' / ' + fmtTime(e.last))),
        h('p', {}, h('a', { href: '#/flows?' + new URLSearchParams(Object.assign({ limit: '200' }, inv.byIdentity.get(e.source) ? { workload: inv.byIdentity.get(e.source).workloads[0] } : {})).toString() }, 'flows of this source')),
        h('p', { class: 'muted' }, 'Explaining with the current policy…'));
      try {
        const { src, dst } = await endpoints(e, inv);
        const x = await explain(src, dst, e.service);
        explainBox.lastChild.remove();
        add(explainBox, renderExplanation(x));
      } catch (err) {
        if (err instanceof Unauthorized) throw err;
        explainBox.lastChild.remove();
        add(explainBox, errorBox(err));
      }
    }

    return {
      async mount(main, params) {
        filterNs = params.get('namespace') || '';
        onlyViolations = params.get('violations') === '1' || params.get('violations') === 'true';
        const nsInput = h('input', { name: 'namespace', value: filterNs, placeholder: 'any', size: 10 });
        const vioInput = h('input', { type: 'checkbox', name: 'violations', checked: onlyViolations });
        edgeTable = h('div', { id: 'edges' });
        explainBox = h('div', { id: 'explain' }, h('p', { class: 'muted' }, 'Click a connection (in the drawing or the list) to explain it.'));
        panel = h('aside', { id: 'panel' },
          h('form', { class: 'filters', onsubmit: (ev) => { ev.preventDefault(); go('graph', { namespace: nsInput.value.trim(), violations: vioInput.checked }); } },
            h('label', {}, 'namespace', nsInput),
            h('label', { class: 'check' }, vioInput, 'only violations and denials'),
            h('button', { type: 'submit' }, 'Apply')),
          h('div', { class: 'legend' },
            h('span', {}, h('i', { class: 'allowed' }), 'allowed'),
            h('span', {}, h('i', { class: 'violation' }), 'violation (Monitor)'),
            h('span', {}, h('i', { class: 'denied' }), 'denied')),
          h('p', { class: 'muted' }, 'Boxes are groups (border: Protect solid, Monitor dashed, Discover dotted); dots are workload identities.'),
          h('h2', {}, 'Selected connection'), explainBox,
          h('h2', {}, 'Connections'), edgeTable);
        const cyDiv = h('div', { id: 'cy' });
        add(main, h('div', { class: 'graph-page' }, cyDiv, panel));
        if (typeof window.cytoscape !== 'function') throw new Error('cytoscape.min.js did not load');
        cy = window.cytoscape({ container: cyDiv, style: GRAPH_STYLE, wheelSensitivity: 0.3, boxSelectionEnabled: false });
        cy.on('tap', 'edge', (ev) => go('graph', { edge: ev.target.id(), namespace: filterNs, violations: onlyViolations }));
        // For the console and for browser automation.
        window.bulkheadGraph = cy;
        await load();
        selected = params.get('edge');
        if (selected) await select(selected, true);
        every(GRAPH_EVERY_MS, () => load().catch((e) => handleError(e)));
      },
      async update(params) {
        const ns = params.get('namespace') || '';
        const vio = params.get('violations') === '1' || params.get('violations') === 'true';
        if (ns !== filterNs || vio !== onlyViolations) {
          filterNs = ns;
          onlyViolations = vio;
          shape = '';
          await load().catch((e) => handleError(e));
        }
        const edge = params.get('edge');
        if (edge && edge !== selected) {
          selected = edge;
          await select(edge, true).catch((e) => handleError(e));
        }
      },
      destroy() {
        if (cy) cy.destroy();
        delete window.bulkheadGraph;
      },
    };
  };

  // ---- flows and events --------------------------------------------------------------

  function decidedText(d) {
    if (!d) return '';
    if (d.rule) {
      const r = d.rule;
      return `${d.side}: ${r.kind} ${r.policy} ${r.direction} rule ${r.rule}${r.name ? ` (${r.name})` : ''}`;
    }
    if (d.tier === 'mode') return `${d.side}: ${d.mode || '?'} mode${d.group ? ` (group ${d.group})` : ''}`;
    if (d.tier === 'network-policy') return `${d.side}: isolated by NetworkPolicy ${(d.isolated_by || []).join(', ')}`;
    return `${d.side}: ${d.tier}`;
  }
  function peerText(p) {
    if (!p) return '';
    if (p.workload) return p.workload;
    if (p.entity === 'host') return 'host ' + p.ip;
    return p.ip;
  }
  function flowService(f) {
    if (f.dport !== undefined && f.dport !== null) return `${f.protocol}/${f.dport}`;
    if (f.icmp_type !== undefined && f.icmp_type !== null) return `${f.protocol}/${f.icmp_type}/${f.icmp_code || 0}`;
    return f.protocol;
  }

  // A filter form whose values live in the address (so a filtered view can be shared),
  // and a table refreshed every few seconds.
  function tablePage(name, fields, fetchRows, columns, rowAttrs, summary) {
    return function () {
      let out;
      let params;
      async function load() {
        const qs = new URLSearchParams();
        for (const f of fields) {
          const v = params.get(f.name);
          if (v) qs.set(f.name, f.type === 'checkbox' ? 'true' : v);
        }
        if (!qs.has('limit')) qs.set('limit', '200');
        const rows = await fetchRows(qs);
        clear(out);
        add(out, h('p', { class: 'muted', id: 'count' }, summary(rows)));
        add(out, table(columns, rows, rowAttrs));
        setStatus(`${rows.length} ${name} · ${new Date().toLocaleTimeString()}`);
      }
      return {
        async mount(main, p) {
          params = p;
          const inputs = {};
          const form = h('form', { class: 'filters', id: name + '-filters', onsubmit: (ev) => {
            ev.preventDefault();
            const v = {};
            for (const f of fields) v[f.name] = f.type === 'checkbox' ? inputs[f.name].checked : inputs[f.name].value.trim();
            go(name, v);
          } });
          for (const f of fields) {
            let input;
            if (f.options) {
              input = h('select', { name: f.name }, f.options.map((o) => h('option', { value: o }, o || 'any')));
              input.value = params.get(f.name) || '';
            } else if (f.type === 'checkbox') {
              input = h('input', { type: 'checkbox', name: f.name, checked: !!params.get(f.name) });
            } else {
              input = h('input', { name: f.name, value: params.get(f.name) || '', placeholder: f.placeholder || '', size: f.size || 14 });
            }
            inputs[f.name] = input;
            add(form, f.type === 'checkbox' ? h('label', { class: 'check' }, input, f.title) : h('label', {}, f.title, input));
          }
          add(form, h('button', { type: 'submit', class: 'primary' }, 'Filter'));
          out = h('div', { id: name + '-table' });
          add(main, h('h2', {}, name[0].toUpperCase() + name.slice(1)), form, out);
          await load();
          every(TABLE_EVERY_MS, () => load().catch((e) => handleError(e)));
        },
      };
    };
  }

  PAGES.flows = tablePage('flows', [
    { name: 'workload', title: 'workload', placeholder: 'ns/name' },
    { name: 'namespace', title: 'namespace', size: 10 },
    { name: 'verdict', title: 'verdict', options: ['', 'allow', 'deny', 'log'] },
    { name: 'group', title: 'decided by group', size: 10 },
    { name: 'rule', title: 'rule', placeholder: 'POLICY or POLICY#N', size: 12 },
    { name: 'since', title: 'since', placeholder: '1h or RFC 3339', size: 12 },
    { name: 'limit', title: 'last', placeholder: '200', size: 5 },
    { name: 'violations', title: 'only violations', type: 'checkbox' },
  ], async (qs) => (await api('/flows?' + qs.toString())).reverse(), [
    { title: 'time', cell: (f) => shortTime(f.time) },
    { title: 'verdict', cls: 'verdict', cell: (f) => f.verdict + (f.violation ? ' (violation)' : '') + (f.learned ? ' (learned)' : '') },
    { title: 'source', cell: (f) => peerText(f.src) },
    { title: 'destination', cell: (f) => peerText(f.dst) },
    { title: 'service', cell: (f) => flowService(f) + (f.l7 && f.l7.protocol ? ' ' + f.l7.protocol : '') },
    { title: 'decided by', cell: (f) => decidedText(f.decided_by) },
    { title: 'mode', cell: (f) => f.mode || '' },
    { title: 'event', cell: (f) => f.event + (f.bytes ? ` (${f.bytes} B)` : '') },
    { title: '', cell: (f) => (f.src.workload || f.src.ip) && (f.dst.workload || f.dst.ip) && f.dport ?
      h('a', { href: '#/policies?' + new URLSearchParams({ src: f.src.workload || f.src.ip, dst: f.dst.workload || f.dst.ip, service: flowService(f) }).toString() }, 'explain') : '' },
  ], (f) => ({ class: 'flow ' + (f.violation ? 'violation' : f.verdict) }),
  (rows) => `${rows.length} flow records, newest first`);

  function eventWorkload(e, side) {
    const d = e.decision && e.decision.detail && e.decision.detail[side];
    if (d && d.workload) return d.workload;
    if (e[side] && e[side].workload) return e[side].workload;
    return e[side === 'src' ? 'client' : 'server'] || '-';
  }
  function eventOutcome(e) {
    if (e.event === 'sensor') {
      // What was found, where, and the (masked) match: the reason to open the event.
      const found = (e.findings || []).map((f) =>
        `${f.sensor || '?'}: ${f.class || '?'}${f.location ? ' in ' + f.location : ''}${f.masked ? ' "' + f.masked + '"' : ''}`).join('; ');
      return `${e.blocked ? 'blocked' : 'alert'}: ${found}`;
    }
    if (e.decision) return `${e.decision.allowed ? 'allowed' : 'refused'}${e.decision.decided_by ? ' — ' + e.decision.decided_by : ''}`;
    return '';
  }
  // A capture is served with the token like every API answer: fetched, then saved.
  function captureButton(path) {
    const name = path.split('/').pop();
    return h('button', { type: 'button', class: 'capture', title: path, onclick: async () => {
      try {
        const r = await fetch(API + '/captures/' + encodeURIComponent(name), { headers: { Authorization: 'Bearer ' + token() } });
        if (!r.ok) throw new Error(`${r.status}: ${await r.text()}`);
        const a = h('a', { href: URL.createObjectURL(await r.blob()), download: name });
        document.body.appendChild(a);
        a.click();
        a.remove();
      } catch (err) {
        setStatus('capture: ' + (err.message || err), true);
      }
    } }, name);
  }
  function isRefusal(e) {
    return e.event === 'sensor' || (['protocol', 'request', 'connection'].includes(e.event) && e.decision && e.decision.allowed === false);
  }

  PAGES.events = tablePage('events', [
    { name: 'workload', title: 'workload', placeholder: 'ns/name' },
    { name: 'namespace', title: 'namespace', size: 10 },
    { name: 'kind', title: 'kind', options: ['', 'connection', 'protocol', 'request', 'sensor', 'closed'] },
    { name: 'since', title: 'since', placeholder: '1h or RFC 3339', size: 12 },
    { name: 'limit', title: 'last', placeholder: '200', size: 5 },
    { name: 'all', title: 'all events (not only refusals and sensor hits)', type: 'checkbox' },
  ], async (qs) => (await api('/events?' + qs.toString())).reverse(), [
    { title: 'time', cell: (e) => shortTime(e.time) },
    { title: 'event', cls: 'kind', cell: (e) => String(e.event) },
    { title: 'protocol', cell: (e) => e.protocol || '' },
    { title: 'source', cell: (e) => eventWorkload(e, 'src') },
    { title: 'destination', cell: (e) => eventWorkload(e, 'dst') },
    { title: 'request', cell: (e) => e.request || '' },
    { title: 'outcome', cell: (e) => eventOutcome(e) },
    { title: 'capture', cell: (e) => (typeof e.pcap === 'string' && e.pcap ? captureButton(e.pcap) : '') },
  ], (e) => ({ class: 'event ' + (isRefusal(e) ? 'refusal' : '') }),
  (rows) => `${rows.length} events, newest first`);

  // ---- policies: groups and modes, files, explain ------------------------------------

  const MODES = ['Discover', 'Monitor', 'Protect'];

  PAGES.policies = function () {
    let groupsBox;
    let filesBox;
    let yamlBox;
    let explainOut;
    let form;

    // The sensors, and which of the members' connections they read when it is not
    // only those to them (the default).
    function sensorsCell(g) {
      const names = (g.sensors || []).join(', ');
      const i = g.inspect || { ingress: true, egress: false };
      if (!names || (i.ingress && !i.egress)) return names;
      const dirs = [i.ingress ? 'ingress' : null, i.egress ? 'egress' : null].filter(Boolean);
      return `${names} (${dirs.join(' + ')})`;
    }

    async function loadGroups() {
      const groups = await api('/groups');
      clear(groupsBox);
      add(groupsBox, table([
        { title: 'group', cell: (g) => g.name },
        { title: 'mode', cell: (g) => h('span', { class: 'modes', 'data-group': g.name, 'data-mode': String(g.mode) },
          MODES.map((m) => h('button', {
            type: 'button', class: 'mode-' + m + (String(g.mode) === m ? ' current' : ''),
            'aria-pressed': String(g.mode) === m ? 'true' : 'false',
            onclick: () => setMode(g.name, m),
          }, m))) },
        { title: 'workloads', cell: (g) => String((g.workloads || []).length) },
        { title: 'sensors', cell: (g) => sensorsCell(g) },
        { title: 'defined at', cell: (g) => `${g.file}:${g.line}` },
      ], groups, (g) => ({ class: 'group', 'data-group': g.name })));
    }

    async function setMode(name, mode) {
      try {
        const r = await api('/groups/' + encodeURIComponent(name) + '/mode', {
          method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ mode: mode.toLowerCase() }),
        });
        setStatus(r.changed ? `group ${r.group}: ${r.from} → ${r.to} (written to ${r.file})` : `group ${r.group} is already in ${r.to}`);
        await loadGroups();
      } catch (e) {
        handleError(e, groupsBox);
      }
    }

    async function loadFiles(params) {
      const files = await api('/policies');
      clear(filesBox);
      add(filesBox, table([
        { title: 'file', cell: (f) => h('a', { href: '#/policies?' + new URLSearchParams({ file: f.file }).toString() }, f.file) },
        { title: 'documents', cell: (f) => (f.documents || []).map((d) => `${d.kind} ${d.namespace ? d.namespace + '/' : ''}${d.name}`).join(', ') },
      ], files, (f) => ({ class: 'policy-file' })));
      let file = params.get('file');
      const path = params.get('path');
      if (!file && path) {
        const f = files.find((x) => x.path === path);
        file = f && f.file;
      }
      clear(yamlBox);
      if (file) {
        const f = await api('/policies/' + encodeURIComponent(file));
        add(yamlBox, h('h3', {}, f.path), h('pre', { id: 'yaml' }, f.text || ''));
      }
    }

    async function runExplain(params) {
      clear(explainOut);
      const src = params.get('src');
      const dst = params.get('dst');
      const svc = params.get('service');
      if (!src || !dst || !svc) return;
      try {
        const x = await explain(src, dst, svc, params.get('request'));
        add(explainOut, renderExplanation(x));
        const d = decidingSide(x);
        if (d.rule && d.rule.origin && d.rule.origin.file) {
          add(explainOut, h('p', {}, h('a', { href: '#/policies?' + new URLSearchParams({ path: d.rule.origin.file }).toString() }, 'show the file of the deciding rule')));
        }
      } catch (e) {
        if (e instanceof Unauthorized) throw e;
        add(explainOut, errorBox(e));
      }
    }

    function fillForm(params) {
      for (const k of ['src', 'dst', 'service', 'request']) form.elements[k].value = params.get(k) || '';
    }

    return {
      async mount(main, params) {
        groupsBox = h('div', { id: 'groups' });
        filesBox = h('div', { id: 'files' });
        yamlBox = h('div', { id: 'policy-yaml' });
        explainOut = h('div', { id: 'explain' });
        form = h('form', { class: 'filters', id: 'explain-form', onsubmit: (ev) => {
          ev.preventDefault();
          const v = {};
          for (const k of ['src', 'dst', 'service', 'request']) v[k] = form.elements[k].value.trim();
          go('policies', v);
        } },
        h('label', {}, 'from', h('input', { name: 'src', placeholder: 'ns/name or IP' })),
        h('label', {}, 'to', h('input', { name: 'dst', placeholder: 'ns/name, IP or DNS name' })),
        h('label', {}, 'service', h('input', { name: 'service', placeholder: 'TCP/80', size: 8 })),
        h('label', {}, 'L7 request', h('input', { name: 'request', placeholder: 'http GET /path' })),
        h('button', { type: 'submit', class: 'primary' }, 'Explain'));
        add(main,
          h('h2', {}, 'Groups and modes'),
          h('p', { class: 'muted' }, 'Discover allows and records for learning; Monitor allows and reports violations; Protect denies what no rule allows. A switch rewrites the mode: line of the group in its file; the agents pick it up.'),
          groupsBox,
          h('h2', { style: 'margin-top:18px' }, 'Explain a connection'), form, explainOut,
          h('div', { class: 'cols', style: 'margin-top:18px' },
            h('div', {}, h('h2', {}, 'Policy files'), filesBox),
            h('div', {}, yamlBox)));
        fillForm(params);
        await Promise.all([loadGroups(), loadFiles(params), runExplain(params)]);
      },
      async update(params) {
        fillForm(params);
        await Promise.all([loadFiles(params), runExplain(params)]).catch((e) => handleError(e));
      },
    };
  };

  // ---- learn -------------------------------------------------------------------------

  // The matrix diff of the proposal against the current rules (both in Protect), as
  // `bulkhead learn` prints it: changes on services their destination declares listed,
  // those on ports nothing declares only counted.
  function reachability(d) {
    if (!d || !d.diff) return h('p', { class: 'muted' }, 'Not computed (too many workloads, or a policy that does not compile).');
    const c = d.on_declared_ports;
    const u = d.undeclared;
    const rows = c.newly_allowed.concat(c.newly_denied);
    return h('div', { id: 'reachability' },
      h('p', { id: 'reachability-summary' }, `On ${d.probes.join(' ')}: ${c.newly_allowed.length} newly allowed, ${c.newly_denied.length} newly denied` +
        (u.newly_allowed + u.newly_denied ? `; on ports the destination does not declare: ${u.newly_allowed} newly allowed, ${u.newly_denied} newly denied.` : '.')),
      rows.length ? table([
        { title: '', cell: (x) => x.becomes === 'allowed' ? '+ allowed' : '- denied' },
        { title: 'from', cell: (x) => x.from },
        { title: 'to', cell: (x) => x.to },
        { title: 'service', cell: (x) => x.probe },
      ], rows.slice(0, 200), (x) => ({ class: 'reach ' + x.becomes })) : null);
  }

  PAGES.learn = function () {
    return {
      async mount(main, params) {
        const mode = params.get('mode') || 'monitor';
        const select = h('select', { name: 'mode' }, ['discover', 'monitor', 'protect'].map((m) => h('option', { value: m }, m)));
        select.value = mode;
        add(main, h('h2', {}, 'Learned policy'),
          h('form', { class: 'filters', onsubmit: (ev) => { ev.preventDefault(); go('learn', { mode: select.value }); } },
            h('label', {}, 'write the proposed groups in mode', select),
            h('button', { type: 'submit', class: 'primary' }, 'Learn again')));
        const body = h('div', { id: 'learn' }, h('p', { class: 'muted' }, 'Learning from the recorded flows…'));
        add(main, body);
        const r = await api('/learn?' + new URLSearchParams({ mode }).toString());
        const p = r.proposal;
        const c = r.coverage;
        clear(body);
        const download = h('a', {
          href: URL.createObjectURL(new Blob([p.yaml], { type: 'application/yaml' })),
          download: 'proposed-policy.yaml',
        }, 'download the YAML');
        const replayBox = h('div', { id: 'replay' }, h('p', { class: 'muted' }, 'Replaying the recorded flows against the proposal…'));
        add(body,
          h('div', { class: 'cols' },
            h('div', {},
              h('h3', {}, 'Observed'),
              h('dl', { class: 'kv' },
                h('dt', {}, 'flow records'), h('dd', {}, String(r.flows.records)),
                h('dt', {}, 'skipped'), h('dd', {}, String(r.flows.skipped)),
                h('dt', {}, 'conversations'), h('dd', {}, String(r.flows.conversations)),
                h('dt', {}, 'from'), h('dd', {}, shortTime(r.flows.first) || '-'),
                h('dt', {}, 'to'), h('dd', {}, shortTime(r.flows.last) || '-'))),
            h('div', {},
              h('h3', {}, 'Coverage'),
              h('dl', { class: 'kv', id: 'coverage' },
                h('dt', {}, 'allowed flows the proposal allows'), h('dd', {}, `${c.covered_flows} of ${c.allowed_flows} (${Number(c.percent).toFixed(1)} %)`),
                h('dt', {}, 'denied flows it would allow'), h('dd', {}, `${c.denied_but_allowed_flows} of ${c.denied_flows}`),
                h('dt', {}, 'groups / rules'), h('dd', {}, `${p.groups.length} / ${p.rules} (for ${p.conversations} talking pairs)`)))),
          c.uncovered.length ? [h('h3', {}, 'Allowed now, not by the proposal'), seenTable(c.uncovered)] : null,
          c.opened.length ? [h('h3', {}, 'Denied now, allowed by the proposal'), seenTable(c.opened)] : null,
          h('h3', {}, 'Proposed groups'),
          table([
            { title: 'group', cell: (g) => g.name },
            { title: 'namespaces', cell: (g) => (g.namespaces || []).join(', ') },
            { title: 'selector', cell: (g) => h('code', {}, g.selector) },
            { title: 'workloads', cell: (g) => (g.workloads || []).join(', ') },
          ], p.groups, () => ({ class: 'proposed-group' })),
          Object.keys(p.volatile || {}).length ? h('p', { class: 'muted' }, 'Left out of identities: ' +
            Object.entries(p.volatile).map(([k, why]) => `${k} (${why})`).join('; ')) : null,
          h('h3', {}, 'Reachability against the current policy\'s rules'), reachability(r.diff),
          h('h3', {}, 'What changes against the current policy'), replayBox,
          h('h3', {}, 'Proposed YAML ', download),
          h('pre', { id: 'proposal-yaml' }, p.yaml));
        try {
          const d = await api('/replay', { method: 'POST', headers: { 'Content-Type': 'application/yaml' }, body: p.yaml });
          clear(replayBox);
          add(replayBox,
            h('p', { id: 'replay-summary' }, `Of ${d.flows} recorded flows (${d.conversations} conversations): ${d.unchanged_flows} unchanged, ` +
              `${d.newly_allowed_flows} newly allowed, ${d.newly_denied_flows} newly denied.`),
            d.newly_denied.length ? [h('h3', {}, 'Newly denied'), changeTable(d.newly_denied)] : null,
            d.newly_allowed.length ? [h('h3', {}, 'Newly allowed'), changeTable(d.newly_allowed)] : null,
            d.by_rule.length ? [h('h3', {}, 'By deciding rule'), bucketTable(d.by_rule)] : null);
        } catch (e) {
          if (e instanceof Unauthorized) throw e;
          clear(replayBox);
          add(replayBox, errorBox(e));
        }
        setStatus(`learned from ${r.flows.records} flow records · ${new Date().toLocaleTimeString()}`);
      },
    };
  };
  function seenTable(rows) {
    return table([
      { title: 'from', cell: (s) => s.src }, { title: 'to', cell: (s) => s.dst },
      { title: 'service', cell: (s) => s.service + (s.request ? ' ' + s.request : '') },
      { title: 'flows', cell: (s) => String(s.flows) },
    ], rows);
  }
  function changeTable(rows) {
    return table([
      { title: 'from', cell: (s) => s.src }, { title: 'to', cell: (s) => s.dst },
      { title: 'service', cell: (s) => s.service + (s.request ? ' ' + s.request : '') },
      { title: 'flows', cell: (s) => String(s.flows) },
      { title: 'now decided by', cell: (s) => s.was }, { title: 'would be decided by', cell: (s) => s.now },
    ], rows, (s) => ({ class: 'change ' + s.becomes }));
  }
  function bucketTable(rows) {
    return table([
      { title: 'rule or mode', cell: (b) => b.key },
      { title: 'newly allowed flows', cell: (b) => String(b.newly_allowed_flows) },
      { title: 'newly denied flows', cell: (b) => String(b.newly_denied_flows) },
    ], rows);
  }

  // ---- start -------------------------------------------------------------------------

  takeTokenFromUrl();
  window.addEventListener('hashchange', () => { route(); });
  route();
})();
