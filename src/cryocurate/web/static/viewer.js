/* View Tomogram: z slices of an OME-Zarr pyramid level, served as PNGs, drawn on a canvas with
   the annotation layers on top (points as circles near their z, oriented points with their
   rotated x axis, segmentation masks as outlines). Plain JS, no build.

   Slices are decoded once into ImageBitmaps and kept in a cache; after every slice is shown
   the neighbouring slices are fetched, so the next key press draws synchronously. Each key
   press records how long it took to draw the new slice in window.viewerTimings
   (performance.now() deltas) and as performance marks "viewer-key"/"viewer-drawn".
   The canvas exposes what it drew as data attributes: data-z, data-level, data-ready,
   data-drawn-points, data-drawn-masks, data-zoom. */
(() => {
  "use strict";
  const cfg = JSON.parse(document.getElementById("viewer-config").textContent);
  const canvas = document.getElementById("viewer-canvas");
  const ctx = canvas.getContext("2d");
  const statusEl = document.getElementById("viewer-status");
  const zInput = document.getElementById("viewer-z");
  const zOut = document.getElementById("viewer-z-out");
  const levelSel = document.getElementById("viewer-level");
  const zoomOut = document.getElementById("viewer-zoom-out-value");
  const contrastInput = document.getElementById("viewer-contrast");
  const brightnessInput = document.getElementById("viewer-brightness");

  const PREFETCH = 8; // slices each side
  const MAX_CACHED = 400;
  const levels = cfg.levels;
  const st = {
    level: cfg.level, z: 0, scale: 1, panX: 0, panY: 0,
    contrast: 1, brightness: 1, pendingKey: null,
  };
  const cache = new Map(); // key -> {bitmap, promise, failed}
  const layers = cfg.layers.map(l => ({ ...l, points: null, loading: null }));
  window.viewerTimings = [];

  const lv = () => levels[st.level];
  const depth = () => lv().shape_zyx[0];
  const sliceKey = (level, z) => `s:${level}:${z}`;
  const outlineKey = (layer, level, z) => `o:${layer.annotation_id}:${level}:${z}`;

  function load(key, url) {
    let entry = cache.get(key);
    if (entry) { cache.delete(key); cache.set(key, entry); return entry; } // LRU touch
    entry = { bitmap: null, failed: false, promise: null };
    entry.promise = fetch(url)
      .then(r => { if (!r.ok) throw new Error(r.status + " " + url); return r.blob(); })
      .then(b => createImageBitmap(b))
      .then(bm => { entry.bitmap = bm; return bm; })
      .catch(err => { entry.failed = true; cache.delete(key); console.warn(err); });
    cache.set(key, entry);
    while (cache.size > MAX_CACHED) {
      const [oldKey, old] = cache.entries().next().value;
      cache.delete(oldKey);
      if (old.bitmap) old.bitmap.close();
    }
    return entry;
  }
  const sliceUrl = (level, z) => `${cfg.slice_url}?z=${z}&level=${level}`;
  const outlineUrl = (layer, level, z) =>
    `${layer.outline_url}?z=${z}&level=${level}&colour=${layer.colour.slice(1)}`;

  function requestSlice(level, z) { return load(sliceKey(level, z), sliceUrl(level, z)); }
  function requestOutline(layer, level, z) {
    return load(outlineKey(layer, level, z), outlineUrl(layer, level, z));
  }

  function loadPoints(layer) {
    if (layer.points || layer.loading || !layer.points_url) return;
    layer.loading = fetch(layer.points_url).then(r => r.json()).then(data => {
      layer.points = data; draw();
    }).catch(err => console.warn(err));
  }

  function prefetch() {
    const n = depth();
    for (let d = 1; d <= PREFETCH; d++) {
      for (const z of [st.z + d, st.z - d]) {
        if (z < 0 || z >= n) continue;
        requestSlice(st.level, z);
        for (const layer of layers) {
          if (layer.visible && layer.kind === "mask") requestOutline(layer, st.level, z);
        }
      }
    }
  }

  function fit() {
    const [, h, w] = lv().shape_zyx;
    st.scale = Math.min(canvas.width / w, canvas.height / h);
    st.panX = (canvas.width - w * st.scale) / 2;
    st.panY = (canvas.height - h * st.scale) / 2;
  }

  function drawPoints(layer, binning) {
    const data = layer.points;
    if (!data) return 0;
    const r = layer.radius_vox; // voxels of level 0
    const zc = (st.z + 0.5) * binning - 0.5; // this slice's centre in level-0 voxels
    let drawn = 0;
    ctx.strokeStyle = layer.colour;
    ctx.fillStyle = layer.colour;
    ctx.lineWidth = 2;
    for (let i = 0; i < data.xyz.length; i++) {
      const [x, y, z] = data.xyz[i];
      const dz = Math.abs(z - zc);
      if (dz > r) continue;
      const px = st.panX + ((x + 0.5) / binning) * st.scale;
      const py = st.panY + ((y + 0.5) / binning) * st.scale;
      const rad = Math.max(3, (Math.sqrt(r * r - dz * dz) / binning) * st.scale);
      ctx.globalAlpha = 1 - 0.6 * (dz / r);
      ctx.beginPath();
      ctx.arc(px, py, rad, 0, 2 * Math.PI);
      ctx.stroke();
      if (data.x_axes) {
        const [ax, ay] = data.x_axes[i];
        const len = Math.max(6, (r / binning) * st.scale * 1.6);
        ctx.beginPath();
        ctx.moveTo(px, py);
        ctx.lineTo(px + ax * len, py + ay * len);
        ctx.stroke();
        ctx.beginPath();
        ctx.arc(px, py, 1.5, 0, 2 * Math.PI);
        ctx.fill();
      }
      drawn++;
    }
    ctx.globalAlpha = 1;
    return drawn;
  }

  function draw() {
    const level = st.level, z = st.z;
    const entry = requestSlice(level, z);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#111";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!entry.bitmap) {
      canvas.dataset.ready = "0";
      statusEl.textContent = `Loading slice ${z}…`;
      entry.promise.then(() => { if (st.level === level && st.z === z) draw(); });
      return;
    }
    const binning = lv().binning;
    ctx.imageSmoothingEnabled = st.scale < 1;
    ctx.filter = `contrast(${st.contrast}) brightness(${st.brightness})`;
    ctx.setTransform(st.scale, 0, 0, st.scale, st.panX, st.panY);
    ctx.drawImage(entry.bitmap, 0, 0);
    ctx.filter = "none";
    let masks = 0;
    for (const layer of layers) {
      if (!layer.visible || layer.kind !== "mask") continue;
      const o = requestOutline(layer, level, z);
      if (o.bitmap) { ctx.drawImage(o.bitmap, 0, 0); masks++; }
      else o.promise.then(() => { if (st.level === level && st.z === z) draw(); });
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.imageSmoothingEnabled = true;
    let points = 0;
    for (const layer of layers) {
      if (layer.visible && layer.kind === "points") points += drawPoints(layer, binning);
    }
    canvas.dataset.z = String(z);
    canvas.dataset.level = String(level);
    canvas.dataset.ready = "1";
    canvas.dataset.drawnPoints = String(points);
    canvas.dataset.drawnMasks = String(masks);
    canvas.dataset.zoom = st.scale.toFixed(4);
    canvas.dataset.visibleLayers = layers.filter(l => l.visible).map(l => l.annotation_id).join(",");
    zInput.value = String(z);
    zOut.textContent = `${z} / ${depth() - 1}`;
    zoomOut.textContent = `${Math.round(st.scale * binning * 100)}%`;
    statusEl.textContent =
      `Slice ${z} of ${depth()} · ${points} marker${points === 1 ? "" : "s"} drawn`;
    if (st.pendingKey !== null) {
      const t0 = st.pendingKey;
      st.pendingKey = null;
      const dt = performance.now() - t0;
      performance.mark("viewer-drawn");
      requestAnimationFrame(() => {
        window.viewerTimings.push({ z, draw_ms: dt, frame_ms: performance.now() - t0 });
      });
    }
    prefetch();
  }

  function setZ(z) {
    const n = depth();
    st.z = Math.max(0, Math.min(n - 1, Math.round(z)));
    draw();
  }

  function zoomAt(factor, cx = canvas.width / 2, cy = canvas.height / 2) {
    const s = Math.max(0.05, Math.min(64, st.scale * factor));
    const f = s / st.scale;
    st.panX = cx - (cx - st.panX) * f;
    st.panY = cy - (cy - st.panY) * f;
    st.scale = s;
    draw();
  }

  function setLevel(level) {
    const old = lv();
    st.level = level;
    const b = lv().binning / old.binning;
    const zc = (st.z + 0.5) / b - 0.5;
    st.scale *= b;
    st.z = Math.max(0, Math.min(depth() - 1, Math.round(zc)));
    zInput.max = String(depth() - 1);
    draw();
  }

  canvas.addEventListener("keydown", ev => {
    const pan = 40;
    let handled = true;
    const t0 = performance.now();
    if (ev.shiftKey && ev.key.startsWith("Arrow")) {
      if (ev.key === "ArrowLeft") st.panX += pan;
      else if (ev.key === "ArrowRight") st.panX -= pan;
      else if (ev.key === "ArrowUp") st.panY += pan;
      else st.panY -= pan;
      draw();
    } else if (["ArrowUp", "ArrowRight", "ArrowDown", "ArrowLeft", "PageUp", "PageDown",
                "Home", "End"].includes(ev.key)) {
      const step = { ArrowUp: 1, ArrowRight: 1, ArrowDown: -1, ArrowLeft: -1,
                     PageUp: 10, PageDown: -10 }[ev.key];
      const target = ev.key === "Home" ? 0 : ev.key === "End" ? depth() - 1 : st.z + step;
      performance.mark("viewer-key");
      st.pendingKey = t0;
      setZ(target);
    } else if (ev.key === "+" || ev.key === "=") zoomAt(1.25);
    else if (ev.key === "-" || ev.key === "_") zoomAt(0.8);
    else if (ev.key === "0") { fit(); draw(); }
    else handled = false;
    if (handled) ev.preventDefault();
  });

  let wheelAcc = 0;
  canvas.addEventListener("wheel", ev => {
    ev.preventDefault();
    if (ev.ctrlKey) {
      const rect = canvas.getBoundingClientRect();
      zoomAt(ev.deltaY < 0 ? 1.1 : 1 / 1.1, ev.clientX - rect.left, ev.clientY - rect.top);
      return;
    }
    wheelAcc += ev.deltaY;
    if (Math.abs(wheelAcc) >= 50) {
      setZ(st.z + (wheelAcc > 0 ? 1 : -1));
      wheelAcc = 0;
    }
  }, { passive: false });

  let drag = null;
  canvas.addEventListener("pointerdown", ev => {
    canvas.focus();
    drag = { x: ev.clientX, y: ev.clientY, panX: st.panX, panY: st.panY };
    canvas.setPointerCapture(ev.pointerId);
  });
  canvas.addEventListener("pointermove", ev => {
    if (!drag) return;
    st.panX = drag.panX + ev.clientX - drag.x;
    st.panY = drag.panY + ev.clientY - drag.y;
    draw();
  });
  canvas.addEventListener("pointerup", () => { drag = null; });

  zInput.addEventListener("input", () => setZ(Number(zInput.value)));
  levelSel.addEventListener("change", () => setLevel(Number(levelSel.value)));
  document.getElementById("viewer-zoom-in").addEventListener("click", () => zoomAt(1.25));
  document.getElementById("viewer-zoom-out").addEventListener("click", () => zoomAt(0.8));
  document.getElementById("viewer-fit").addEventListener("click", () => { fit(); draw(); });
  contrastInput.addEventListener("input", () => { st.contrast = Number(contrastInput.value); draw(); });
  brightnessInput.addEventListener("input", () => {
    st.brightness = Number(brightnessInput.value); draw();
  });
  for (const box of document.querySelectorAll("input[data-layer]")) {
    box.addEventListener("change", () => {
      const layer = layers.find(l => String(l.annotation_id) === box.dataset.layer);
      layer.visible = box.checked;
      if (layer.visible) loadPoints(layer);
      draw();
    });
  }

  function resize() {
    const stage = canvas.parentElement;
    const w = Math.max(320, Math.floor(stage.clientWidth));
    const h = Math.max(320, Math.floor(Math.min(window.innerHeight - 180, w * 0.8)));
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w; canvas.height = h;
      fit();
    }
  }

  if (!levels.length) { statusEl.textContent = "This tomogram has no OME-Zarr pyramid."; return; }
  resize();
  window.addEventListener("resize", () => { resize(); draw(); });
  zInput.max = String(depth() - 1);
  st.z = Math.floor(depth() / 2);
  for (const layer of layers) if (layer.visible) loadPoints(layer);
  draw();
})();
