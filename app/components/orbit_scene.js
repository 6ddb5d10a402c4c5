// Orbit scene: draws N bodies and their fading trails on a 2D canvas, in the browser.
//
// The server sends two binary messages (see app/components/orbit_scene.py). A single frame
// (pack_frame: a float32 header, then positions [n, 3], then speeds [n] and masses [n] when
// their flags are set) is shown at once and drops the frames still buffered (run start,
// Step, edit, Pause). A chunk (pack_chunk: header with run id, first index and count, then
// the frames' times, positions and speeds) joins a jitter buffer that the animation loop
// plays at model.frame_rate simulated frames/s, painting at the display's rate and
// interpolating linearly between two frames; it acknowledges each frame it reaches
// (model.drawn), which is the server's flow control. model.playing false freezes the
// playback at once on the last whole frame. History is
// never re-sent: this module keeps a ring buffer of past positions per body and fades it.
// Nothing is fetched from the network.
//
// Views: "3d" (drag to orbit, wheel to zoom, double-click to re-fit), the fixed "xy",
// "xz", "yz" projections, or "quad" (all four). Painted frames (animation frames that
// showed a new simulation frame) are counted and reported back as `painted`/`paint_rate`.
//
// Edit mode (model.editing, set by the server while paused; see the "edit mode" sections):
// velocity arrows are drawn, a body can be dragged in the camera plane, an arrow tip dragged
// to set a velocity, shift-click adds a body; each finished gesture sends one
// {type: "edit", action, index, vector} message (simulation units) and the server answers
// with the edited state (FLAG_RESET | FLAG_KEEP_CAMERA: trails dropped, camera kept).
//
// Predict mode (model.predicting, set by the server while paused; see the "predict mode"
// sections): a click (no drag) in a projection sends {type: "guess", plane, a, b} (the two
// coordinates shown, length units); the server keeps the guesses and sends back
// model.predict_marks ({guesses, labels, closest, path}), drawn over the bodies: numbered
// crosses, and after a reveal the true path of model.predict_body and each guess's distance.

const HEADER = 8            // float32 words before the positions
const MAGIC = 7.0           // header[0]: format version
const CHUNK_MAGIC = 8.0     // header[0]: a chunk of consecutive frames
const CHUNK_S = 0.15        // playback seconds per chunk (app/state/frame_stream.py CHUNK_S)
const MAX_TICK_S = 0.25     // a longer gap between animation frames (hidden tab, busy page) advances this much
const FLAG_SPEED = 1        // speeds [n] follow the positions
const FLAG_MASS = 2         // masses [n] follow (speeds first when both)
const FLAG_RESET = 4        // a new run: drop the trails, re-fit the camera
const FLAG_VELOCITY = 8     // velocities [n, 3] follow (after speeds and masses): edit mode
const FLAG_KEEP_CAMERA = 16 // with FLAG_RESET: an edited state, keep the camera
const MAX_ARROWS = 200      // edit mode: velocity arrows for every body up to this N (else the selected one)
const PICK_SLOP = 4         // edit mode: extra CSS px around a body or an arrow tip that still picks it
const TRAIL_SEGMENT_BUDGET = 24000  // segments stroked per viewport and frame, all bodies together
const FADE_BUCKETS = 6      // trail age classes, oldest faintest
const COLOR_BINS = 16       // continuous colour map quantised for batched drawing
const MAX_EDGE_MARKS = 240  // off-screen markers drawn per viewport
const REPORT_MS = 500       // how often painted counts go back to the server

function parseColor(hex) {
  const h = hex.replace("#", "")
  return [parseInt(h.slice(0, 2), 16), parseInt(h.slice(2, 4), 16), parseInt(h.slice(4, 6), 16)]
}

function rgba(rgb, alpha) {
  return `rgba(${rgb[0]},${rgb[1]},${rgb[2]},${alpha})`
}

export function unpackFrame(buffer) {
  // Accept an ArrayBuffer, a typed array or a DataView (transports differ).
  let bytes = buffer
  if (bytes && bytes.buffer instanceof ArrayBuffer && !(bytes instanceof ArrayBuffer)) {
    bytes = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
  }
  const data = new Float32Array(bytes)
  if (data.length >= HEADER && data[0] === CHUNK_MAGIC) return unpackChunk(data)
  if (data.length < HEADER || data[0] !== MAGIC) {
    return null
  }
  const n = data[1] | 0
  const flags = data[2] | 0
  let offset = HEADER
  const position = data.subarray(offset, offset + 3 * n)
  offset += 3 * n
  let speed = null
  let mass = null
  if (flags & FLAG_SPEED) {
    speed = data.subarray(offset, offset + n)
    offset += n
  }
  if (flags & FLAG_MASS) {
    mass = data.subarray(offset, offset + n)
    offset += n
  }
  let velocity = null
  if (flags & FLAG_VELOCITY) {
    velocity = data.subarray(offset, offset + 3 * n)
    offset += 3 * n
  }
  return {n, flags, runId: data[3], index: data[4], time: data[5], position, speed, mass, velocity}
}

function unpackChunk(data) {
  // Header [8, n, flags, run id, first index, count, 0, 0], times [count], positions
  // [count, n, 3], speeds [count, n] when FLAG_SPEED.
  const n = data[1] | 0, flags = data[2] | 0, first = data[4] | 0, count = data[5] | 0
  const perFrame = 3 * n + ((flags & FLAG_SPEED) ? n : 0)
  if (count < 1 || data.length !== HEADER + count * (1 + perFrame)) return null
  const positions = HEADER + count, speeds = positions + 3 * n * count
  const frames = []
  for (let k = 0; k < count; k++) {
    frames.push({
      index: first + k, time: data[HEADER + k],
      position: data.subarray(positions + 3 * n * k, positions + 3 * n * (k + 1)),
      speed: (flags & FLAG_SPEED) ? data.subarray(speeds + n * k, speeds + n * (k + 1)) : null,
    })
  }
  return {chunk: true, n, flags, runId: data[3], index: first, count, frames}
}

export function render({model, el}) {
  const canvas = document.createElement("canvas")
  canvas.className = "nbody-orbit-canvas"
  canvas.dataset.scene = model.name
  canvas.style.width = "100%"
  canvas.style.height = "100%"
  canvas.style.display = "block"
  canvas.style.touchAction = "none"
  canvas.style.cursor = "grab"
  const wrap = document.createElement("div")
  wrap.style.position = "relative"
  wrap.style.width = "100%"
  wrap.style.height = "100%"
  wrap.style.minHeight = "300px"
  wrap.appendChild(canvas)
  el.appendChild(wrap)
  const ctx = canvas.getContext("2d", {alpha: false})

  const scene = {
    n: 0, runId: -1, index: -1, time: 0,
    position: new Float32Array(0), speed: null, mass: new Float32Array(0),
    trail: new Float32Array(0), trailCap: 0, trailHead: 0, trailCount: 0,
    center: [0, 0, 0], extent: 1, zoom: 1, yaw: -0.6, pitch: 0.6,
    dirty: true, fresh: false, painted: 0, draws: 0, paintTimes: [],
    viewports: [], projected: [], offscreen: 0, lastReport: 0, reported: -1,
    colorRange: [0, 1], alive: true,
    velocity: null, arrowScale: 0, tips: [],   // edit mode: [n, 3] velocities, arrow time scale, tip pixels per viewport
    // Playback: base = the last whole frame reached (scene.index), buffer = frames after it,
    // alpha = how far (0..1) the picture is from base towards buffer[0].
    base: new Float32Array(0), buffer: [], alpha: 0, lastTick: null, acked: [-1, -1],
    drops: 0,         // buffered futures dropped by a single frame (Pause, a slider, Step, edits)
    paintLog: null,   // tests: [{index, next, alpha, position}] per painted frame while recording
  }

  // -------------------------------------------------------------- colours and sizes
  let palette = (model.palette || []).map(parseColor)
  let categorical = (model.categorical || []).map(parseColor)
  const background = parseColor(model.background || "#0b1221")
  let colorIndex = new Uint16Array(0)   // per body: index into the current colour table
  let colorTable = []                   // [r, g, b] per index
  let radius = new Float32Array(0)      // per body, CSS px

  function unitScale(values, out) {
    let lo = Infinity, hi = -Infinity
    for (let i = 0; i < values.length; i++) {
      const v = values[i]
      if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v }
    }
    const flat = !(hi - lo > 1e-12 * Math.max(1, Math.abs(hi)))
    for (let i = 0; i < values.length; i++) {
      out[i] = flat ? 0.5 : Math.min(1, Math.max(0, (values[i] - lo) / (hi - lo)))
    }
    return flat
  }

  function updateSizes() {
    const n = scene.n
    radius = new Float32Array(n)
    const base = n <= 10 ? 9 : n <= 100 ? 4.5 : n <= 500 ? 3 : 2
    const logMass = new Float64Array(n)
    for (let i = 0; i < n; i++) logMass[i] = Math.log10(Math.max(scene.mass[i], 1e-30))
    const scaled = new Float64Array(n)
    const flat = unitScale(logMass, scaled)
    for (let i = 0; i < n; i++) {
      radius[i] = (model.size_by_mass && !flat) ? base * (0.5 + scaled[i]) : base
    }
  }

  function updateColors() {
    const n = scene.n
    colorIndex = new Uint16Array(n)
    if (model.color_by === "speed" && scene.speed) {
      // Speed: continuous map over a range that follows the data smoothly (no flicker).
      let lo = Infinity, hi = -Infinity
      for (let i = 0; i < n; i++) { const v = scene.speed[i]; if (v < lo) lo = v; if (v > hi) hi = v }
      const r = scene.colorRange
      if (!(r[1] > r[0]) || scene.fresh === "reset") { r[0] = lo; r[1] = hi } else { r[0] += 0.2 * (lo - r[0]); r[1] += 0.2 * (hi - r[1]) }
      colorTable = binTable()
      const span = r[1] - r[0] > 1e-12 ? r[1] - r[0] : 1
      for (let i = 0; i < n; i++) {
        const t = Math.min(1, Math.max(0, (scene.speed[i] - r[0]) / span))
        colorIndex[i] = Math.min(COLOR_BINS - 1, Math.floor(t * COLOR_BINS))
      }
    } else if (n <= categorical.length) {
      // Few bodies: one Okabe-Ito colour each, heaviest first (a legend-free identity).
      const order = Array.from({length: n}, (_, i) => i).sort((a, b) => scene.mass[b] - scene.mass[a] || a - b)
      colorTable = categorical
      order.forEach((body, rank) => { colorIndex[body] = rank })
    } else {
      const logMass = new Float64Array(n)
      for (let i = 0; i < n; i++) logMass[i] = Math.log10(Math.max(scene.mass[i], 1e-30))
      const scaled = new Float64Array(n)
      unitScale(logMass, scaled)
      colorTable = binTable()
      for (let i = 0; i < n; i++) colorIndex[i] = Math.min(COLOR_BINS - 1, Math.floor(scaled[i] * COLOR_BINS))
    }
  }

  function binTable() {
    const table = []
    for (let b = 0; b < COLOR_BINS; b++) {
      const k = Math.round((b + 0.5) / COLOR_BINS * (palette.length - 1))
      table.push(palette[Math.max(0, Math.min(palette.length - 1, k))] || [255, 255, 255])
    }
    return table
  }

  // -------------------------------------------------------------- frames
  function allocate(n) {
    scene.n = n
    scene.position = new Float32Array(3 * n)
    scene.base = new Float32Array(3 * n)
    scene.buffer = []
    scene.alpha = 0
    scene.mass = new Float32Array(n).fill(1)
    scene.speed = null
    resizeTrail()
  }

  function resizeTrail() {
    const n = scene.n
    // Keep no more points than can be drawn: long trails at large N are cut, not thinned.
    const cap = Math.max(2, Math.min(model.trail_length | 0, Math.max(2, Math.floor(TRAIL_SEGMENT_BUDGET / Math.max(n, 1)) + 1)))
    scene.trailCap = cap
    scene.trail = new Float32Array(cap * 3 * n)
    scene.trailHead = 0
    scene.trailCount = 0
  }

  function pushTrail(source = scene.position) {
    const n3 = 3 * scene.n
    scene.trail.set(source, scene.trailHead * n3)
    scene.trailHead = (scene.trailHead + 1) % scene.trailCap
    scene.trailCount = Math.min(scene.trailCount + 1, scene.trailCap)
  }

  function receive(buffer) {
    const frame = unpackFrame(buffer)
    if (frame === null) return
    if (frame.chunk) { receiveChunk(frame); return }
    // The server answers a view's "ready" with the current frame as a run start. A view that
    // already holds that run at that frame or later (its frames arrived before the answer,
    // or another view of the same model asked) keeps its trails and camera: the answer is
    // not a new run. A real run start always comes with a new run id.
    const held = scene.buffer.length ? scene.buffer[scene.buffer.length - 1].index : scene.index
    if ((frame.flags & FLAG_RESET) !== 0 && frame.runId === scene.runId && frame.n === scene.n
        && frame.index <= held) return
    const reset = (frame.flags & FLAG_RESET) !== 0 || frame.runId !== scene.runId || frame.n !== scene.n
    if (reset) {
      allocate(frame.n)
      scene.runId = frame.runId
    }
    // A frame where the picture already is (the played frame the server goes back to after a
    // Pause the page froze on) moves nothing: no trail point, so not one pixel changes.
    const still = !reset && sameAs(scene.base, frame.position) && scene.alpha === 0
    if (scene.buffer.length) scene.drops++
    scene.position.set(frame.position)
    scene.base.set(frame.position)
    scene.buffer = []  // a single frame is shown now: the buffered future is dropped
    scene.alpha = 0
    scene.index = frame.index
    scene.time = frame.time
    if (frame.mass) {
      scene.mass = Float32Array.from(frame.mass)
      updateSizes()
    }
    scene.speed = frame.speed ? Float32Array.from(frame.speed) : null
    receiveVelocity(frame, reset)
    if (reset) {
      if (!frame.mass) updateSizes()
      scene.fresh = "reset"
      if (!(frame.flags & FLAG_KEEP_CAMERA)) fit()
    } else {
      scene.fresh = true
      if (model.follow_com) followCenter()
    }
    updateColors()
    if (!still) pushTrail()
    scene.dirty = true
    for (const listener of listeners) listener(frame)
  }

  function sameAs(a, b) {
    if (a.length !== b.length) return false
    for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false
    return true
  }
  const listeners = []  // api.onFrame: called with each frame or chunk received (tests, benchmarks)

  function receiveChunk(chunk) {
    // A chunk of another run (sent before a run start that overtook it) is dropped. One that
    // arrives while paused waits unplayed (sent before the Pause: the server's next frame, the
    // one played, drops it; or sent before the page heard of Play).
    if (chunk.runId !== scene.runId || chunk.n !== scene.n) return
    const last = scene.buffer.length ? scene.buffer[scene.buffer.length - 1].index : scene.index
    for (const frame of chunk.frames) if (frame.index > last) scene.buffer.push(frame)
    for (const listener of listeners) listener(chunk)
  }

  function reachFrame(frame) {
    // The playback passed a whole frame: it becomes the base, joins the trail.
    scene.base.set(frame.position)
    scene.index = frame.index
    scene.time = frame.time
    if (frame.speed) scene.speed = Float32Array.from(frame.speed)
    pushTrail(scene.base)
  }

  function advance(now) {
    // Move the playback on by the time since the last animation frame at frame_rate frames/s,
    // slowed in proportion when less than one chunk is buffered (a simulation slower than the
    // chosen speed is then played at the rate its frames come, smoothly, not in bursts).
    const dt = scene.lastTick === null ? 0 : Math.min(MAX_TICK_S, (now - scene.lastTick) / 1000)
    scene.lastTick = now
    if (!model.playing || !scene.buffer.length) return false
    const rate = model.frame_rate > 0 ? model.frame_rate : 30
    const chunk = Math.max(1, Math.ceil(rate * CHUNK_S))
    const fill = Math.max(0.1, Math.min(1, (scene.buffer.length - scene.alpha) / chunk))
    scene.alpha += dt * rate * fill
    let reached = false
    while (scene.alpha >= 1 && scene.buffer.length) {
      reachFrame(scene.buffer.shift())
      scene.alpha -= 1
      reached = true
    }
    if (!scene.buffer.length) scene.alpha = 0  // nothing to move towards: hold the last frame
    const p = scene.position, a = scene.base
    if (scene.buffer.length && scene.alpha > 0) {
      const b = scene.buffer[0].position, t = scene.alpha
      for (let k = 0; k < p.length; k++) p[k] = a[k] + t * (b[k] - a[k])
    } else {
      p.set(a)
    }
    if (reached) {
      if (scene.speed) updateColors()
      if (model.follow_com) followCenter()
    }
    scene.fresh = true
    scene.dirty = true
    return true
  }

  function freeze() {
    // Paused in the page (the Play toggle, before the server knows): stop on the last whole
    // frame, the one acknowledged, which is where the server's state goes back to.
    scene.buffer = []
    if (scene.alpha > 0) {
      scene.alpha = 0
      scene.position.set(scene.base)
      scene.fresh = true
      scene.dirty = true
    }
  }
  function centerOfMass() {
    const n = scene.n, p = scene.position, m = scene.mass
    let total = 0, cx = 0, cy = 0, cz = 0
    for (let i = 0; i < n; i++) {
      const x = p[3 * i], y = p[3 * i + 1], z = p[3 * i + 2]
      if (!(Number.isFinite(x) && Number.isFinite(y) && Number.isFinite(z))) continue
      total += m[i]; cx += m[i] * x; cy += m[i] * y; cz += m[i] * z
    }
    return total > 0 ? [cx / total, cy / total, cz / total] : [0, 0, 0]
  }

  function followCenter() {
    scene.center = centerOfMass()
  }

  function fit() {
    // Centre on the centre of mass; half-width holds 95 % of the bodies (all when few).
    const n = scene.n, p = scene.position
    const c = centerOfMass()
    const radii = []
    for (let i = 0; i < n; i++) {
      const r = Math.hypot(p[3 * i] - c[0], p[3 * i + 1] - c[1], p[3 * i + 2] - c[2])
      if (Number.isFinite(r)) radii.push(r)
    }
    radii.sort((a, b) => a - b)
    let r = 0
    if (radii.length > 20) r = radii[Math.floor(0.95 * (radii.length - 1))]
    else if (radii.length) r = radii[radii.length - 1]
    scene.center = c
    scene.extent = r > 0 ? 1.25 * r : 1
    scene.zoom = 1
    scene.dirty = true
  }

  // -------------------------------------------------------------- camera
  function layoutViewports(width, height) {
    const view = model.view
    if (view === "quad") {
      const w = width / 2, h = height / 2
      return [
        {kind: "3d", x: 0, y: 0, w, h}, {kind: "xy", x: w, y: 0, w, h},
        {kind: "xz", x: 0, y: h, w, h}, {kind: "yz", x: w, y: h, w, h},
      ]
    }
    return [{kind: view || "3d", x: 0, y: 0, w: width, h: height}]
  }

  // Distances on a log scale (model.distance_scale "log"): a point at distance r from the view's
  // centre is drawn at d(r) = R log(1 + K r / R) / log(1 + K) in the same direction, R = the
  // fitted extent (a point at R stays put), K = LOG_RANGE (about the span of orbit sizes shown
  // apart: near the centre d ~ 67 r). The solar system's orbits (0.4-30 AU) are then spread
  // evenly: Mercury 52 px from the Sun at 1280x720 (2 px to scale). Directions are kept, and
  // orbits about the centre stay closed curves. warp(v) maps an offset from the centre in place;
  // unwarp is its inverse (dragging, placing a guess).
  const LOG_RANGE = 400
  function warp(v) {
    const r = Math.hypot(v[0], v[1], v[2]), R = scene.extent
    if (model.distance_scale !== "log" || !(r > 0)) return v
    const f = R * Math.log1p(LOG_RANGE * r / R) / Math.log1p(LOG_RANGE) / r
    v[0] *= f; v[1] *= f; v[2] *= f
    return v
  }
  function unwarp(v) {
    const d = Math.hypot(v[0], v[1], v[2]), R = scene.extent
    if (model.distance_scale !== "log" || !(d > 0)) return v
    const f = R * Math.expm1(d / R * Math.log1p(LOG_RANGE)) / LOG_RANGE / d
    v[0] *= f; v[1] *= f; v[2] *= f
    return v
  }

  // Project body positions into one viewport: out [n * 3] = screen x, y (CSS px), depth.
  function projector(vp) {
    const cx = vp.x + vp.w / 2, cy = vp.y + vp.h / 2
    const s = 0.5 * Math.min(vp.w, vp.h) / (scene.extent / scene.zoom)
    const [ox, oy, oz] = scene.center
    const offset = [0, 0, 0]
    if (vp.kind === "3d") {
      const cyaw = Math.cos(scene.yaw), syaw = Math.sin(scene.yaw)
      const cp = Math.cos(scene.pitch), sp = Math.sin(scene.pitch)
      const distance = 6 * scene.extent / scene.zoom   // mild perspective
      return (x, y, z, out, k) => {
        offset[0] = x - ox; offset[1] = y - oy; offset[2] = z - oz
        const [vx, vy, vz] = warp(offset)
        const x1 = cyaw * vx - syaw * vy
        const y1 = syaw * vx + cyaw * vy
        const y2 = cp * y1 + sp * vz
        const depth = -sp * y1 + cp * vz
        const f = distance / Math.max(distance - depth, 0.1 * distance)
        out[k] = cx + s * f * x1
        out[k + 1] = cy - s * f * y2
        out[k + 2] = depth
      }
    }
    const a = {xy: 0, xz: 0, yz: 1}[vp.kind], b = {xy: 1, xz: 2, yz: 2}[vp.kind]
    return (x, y, z, out, k) => {
      offset[0] = x - ox; offset[1] = y - oy; offset[2] = z - oz
      const v = warp(offset)
      out[k] = cx + s * v[a]
      out[k + 1] = cy - s * v[b]
      out[k + 2] = 0
    }
  }

  // -------------------------------------------------------------- drawing
  function resize() {
    const dpr = window.devicePixelRatio || 1
    const w = Math.max(1, Math.round(canvas.clientWidth * dpr))
    const h = Math.max(1, Math.round(canvas.clientHeight * dpr))
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w
      canvas.height = h
      scene.dirty = true
    }
    return dpr
  }

  function draw() {
    const dpr = resize()
    const width = canvas.width / dpr, height = canvas.height / dpr
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0)
    ctx.fillStyle = rgba(background, 1)
    ctx.fillRect(0, 0, width, height)
    scene.viewports = layoutViewports(width, height)
    scene.projected = []
    scene.offscreen = 0
    for (const vp of scene.viewports) {
      ctx.save()
      ctx.beginPath()
      ctx.rect(vp.x, vp.y, vp.w, vp.h)
      ctx.clip()
      const project = projector(vp)
      if (vp.kind === "3d") drawAxes(vp, project)
      if (model.trails) drawTrails(vp, project)
      const screen = drawBodies(vp, project)
      scene.projected.push(screen)
      scene.tips[scene.projected.length - 1] = model.editing && !model.predicting ? drawEditOverlay(vp, project, screen) : null
      if (model.predicting || predictMarksShown()) drawPredictOverlay(vp, project, screen)
      drawLabels(vp)
      ctx.restore()
    }
    if (scene.viewports.length > 1) {
      ctx.strokeStyle = "rgba(255,255,255,0.25)"
      ctx.lineWidth = 1
      ctx.beginPath()
      ctx.moveTo(width / 2, 0); ctx.lineTo(width / 2, height)
      ctx.moveTo(0, height / 2); ctx.lineTo(width, height / 2)
      ctx.stroke()
    }
  }

  function drawAxes(vp, project) {
    // A small axis tripod in the corner, turning with the camera.
    const out = new Float64Array(12)
    const e = scene.extent / scene.zoom
    const c = scene.center
    project(c[0], c[1], c[2], out, 0)
    project(c[0] + e, c[1], c[2], out, 3)
    project(c[0], c[1] + e, c[2], out, 6)
    project(c[0], c[1], c[2] + e, out, 9)
    const ox = vp.x + 34, oy = vp.y + vp.h - 34
    ctx.lineWidth = 1.5
    ctx.font = "12px sans-serif"
    ;["x", "y", "z"].forEach((label, a) => {
      const dx = out[3 * (a + 1)] - out[0], dy = out[3 * (a + 1) + 1] - out[1]
      const len = Math.hypot(dx, dy) || 1
      const k = 22 * Math.min(1, len / (0.5 * Math.min(vp.w, vp.h)))
      ctx.strokeStyle = "rgba(220,220,220,0.8)"
      ctx.beginPath()
      ctx.moveTo(ox, oy)
      ctx.lineTo(ox + k * dx / len, oy + k * dy / len)
      ctx.stroke()
      ctx.fillStyle = "rgba(230,230,230,0.9)"
      ctx.fillText(label, ox + (k + 6) * dx / len - 3, oy + (k + 6) * dy / len + 4)
    })
  }

  function drawTrails(vp, project) {
    const n = scene.n, count = scene.trailCount
    if (n === 0 || count < 2) return
    const n3 = 3 * n, cap = scene.trailCap, trail = scene.trail
    const length = Math.min(count, model.trail_length | 0)
    // Project the kept history once: pts[age][body], age 0 the oldest drawn.
    const pts = new Float32Array(length * n * 3)
    for (let a = 0; a < length; a++) {
      const slot = (scene.trailHead - length + a + cap) % cap
      const base = slot * n3
      for (let i = 0; i < n; i++) {
        const k = base + 3 * i
        project(trail[k], trail[k + 1], trail[k + 2], pts, (a * n + i) * 3)
      }
    }
    const bins = colorTable.length
    ctx.lineWidth = n <= 10 ? 2.2 : n <= 200 ? 1.4 : 1
    ctx.lineCap = "round"
    for (let bucket = 0; bucket < FADE_BUCKETS; bucket++) {
      const a0 = Math.floor(bucket * (length - 1) / FADE_BUCKETS)
      const a1 = Math.floor((bucket + 1) * (length - 1) / FADE_BUCKETS)
      if (a1 <= a0) continue
      const alpha = (0.12 + 0.68 * (bucket + 1) / FADE_BUCKETS).toFixed(3)
      for (let c = 0; c < bins; c++) {
        let any = false
        ctx.beginPath()
        for (let i = 0; i < n; i++) {
          if (colorIndex[i] !== c) continue
          let k = (a0 * n + i) * 3
          let x = pts[k], y = pts[k + 1]
          if (!(Number.isFinite(x) && Number.isFinite(y))) continue
          ctx.moveTo(x, y)
          for (let a = a0 + 1; a <= a1; a++) {
            k = (a * n + i) * 3
            x = pts[k]; y = pts[k + 1]
            if (Number.isFinite(x) && Number.isFinite(y)) ctx.lineTo(x, y)
          }
          any = true
        }
        if (any) {
          ctx.strokeStyle = rgba(colorTable[c], alpha)
          ctx.stroke()
        }
      }
    }
  }

  function drawBodies(vp, project) {
    const n = scene.n, p = scene.position
    const screen = new Float32Array(3 * n)
    for (let i = 0; i < n; i++) project(p[3 * i], p[3 * i + 1], p[3 * i + 2], screen, 3 * i)
    const margin = 6
    const x0 = vp.x + margin, y0 = vp.y + margin, x1 = vp.x + vp.w - margin, y1 = vp.y + vp.h - margin
    const bins = colorTable.length
    const outside = []
    // Nearer bodies last, so they cover farther ones (3D view, moderate N only).
    let order = null
    if (vp.kind === "3d" && n <= 2000) {
      order = Array.from({length: n}, (_, i) => i).sort((a, b) => screen[3 * a + 2] - screen[3 * b + 2])
    }
    const outline = n <= 100
    for (let c = 0; c < bins; c++) {
      ctx.fillStyle = rgba(colorTable[c], 1)
      let small = true
      ctx.beginPath()
      for (let j = 0; j < n; j++) {
        const i = order ? order[j] : j
        if (colorIndex[i] !== c) continue
        const x = screen[3 * i], y = screen[3 * i + 1]
        if (!(Number.isFinite(x) && Number.isFinite(y))) continue
        if (x < x0 || x > x1 || y < y0 || y > y1) {
          outside.push(i)
          continue
        }
        const r = radius[i] || 2
        if (r < 2.2) {
          ctx.rect(x - r, y - r, 2 * r, 2 * r)
        } else {
          small = false
          ctx.moveTo(x + r, y)
          ctx.arc(x, y, r, 0, 2 * Math.PI)
        }
      }
      ctx.fill()
      if (outline && !small) {
        ctx.strokeStyle = "rgba(255,255,255,0.85)"
        ctx.lineWidth = 1
        ctx.stroke()
      }
    }
    drawEdgeMarks(vp, screen, outside)
    return screen
  }

  function drawEdgeMarks(vp, screen, outside) {
    // Bodies outside the viewport: a triangle on the edge, pointing towards each one.
    scene.offscreen += outside.length
    if (!outside.length) return
    const cx = vp.x + vp.w / 2, cy = vp.y + vp.h / 2
    const hw = vp.w / 2 - 10, hh = vp.h / 2 - 10
    const step = Math.max(1, Math.ceil(outside.length / MAX_EDGE_MARKS))
    for (let j = 0; j < outside.length; j += step) {
      const i = outside[j]
      const dx = screen[3 * i] - cx, dy = screen[3 * i + 1] - cy
      const t = 1 / Math.max(Math.abs(dx) / hw, Math.abs(dy) / hh, 1e-9)
      const ex = cx + dx * t, ey = cy + dy * t
      const len = Math.hypot(dx, dy) || 1
      const ux = dx / len, uy = dy / len
      ctx.fillStyle = rgba(colorTable[colorIndex[i]] || [255, 255, 255], 0.95)
      ctx.beginPath()
      ctx.moveTo(ex + 7 * ux, ey + 7 * uy)
      ctx.lineTo(ex - 5 * ux - 5 * uy, ey - 5 * uy + 5 * ux)
      ctx.lineTo(ex - 5 * ux + 5 * uy, ey - 5 * uy - 5 * ux)
      ctx.closePath()
      ctx.fill()
    }
    ctx.fillStyle = "rgba(230,230,230,0.9)"
    ctx.font = "12px sans-serif"
    ctx.fillText(`${outside.length} outside view (double-click to fit)`, vp.x + 10, vp.y + vp.h - 10)
  }

  function drawLabels(vp) {
    ctx.fillStyle = "rgba(230,230,230,0.85)"
    ctx.font = "13px sans-serif"
    const name = vp.kind === "3d" ? "3D (drag to rotate)" : `${vp.kind[0]}–${vp.kind[1]} projection`
    const scale = model.distance_scale === "log" ? " · distances from the centre on a log scale" : ""
    ctx.fillText(`${name} · x, y, z in ${model.length_unit}${scale}`, vp.x + 10, vp.y + 18)
    if (vp.x === 0 && vp.y === 0) {
      const what = model.color_by === "speed" ? "speed" : (scene.n <= categorical.length ? "bodies (heaviest first)" : "mass")
      ctx.fillText(`colour: ${what}${model.follow_com ? " · following centre of mass" : ""}`, vp.x + 10, vp.y + 36)
    }
  }

  // -------------------------------------------------------------- edit mode: data
  function receiveVelocity(frame, reset) {
    // Velocities come only while editing; the arrow scale is set when editing starts or a
    // new run arrives, never for an edited state (the tip would jump away from the mouse).
    scene.velocity = frame.velocity ? Float32Array.from(frame.velocity) : null
    if (scene.velocity && (!(scene.arrowScale > 0) || (reset && !(frame.flags & FLAG_KEEP_CAMERA)))) setArrowScale()
  }

  function setArrowScale() {
    // Arrow length = velocity x arrowScale (a time): the median speed draws as a fifth of the
    // view's half-width, so typical arrows are visible and none dominates.
    const v = scene.velocity, n = scene.n
    if (!v || n === 0) { scene.arrowScale = 0; return }
    const speeds = []
    for (let i = 0; i < n; i++) {
      const s = Math.hypot(v[3 * i], v[3 * i + 1], v[3 * i + 2])
      if (Number.isFinite(s) && s > 0) speeds.push(s)
    }
    speeds.sort((a, b) => a - b)
    const typical = speeds.length ? speeds[Math.floor(speeds.length / 2)] : 1
    scene.arrowScale = 0.2 * (scene.extent / scene.zoom) / typical
  }

  function select(i) {
    if (model.selected !== i) model.selected = i
    scene.dirty = true
  }

  // Inverse of projector(vp): the world point drawn at pixel (x, y) at the given depth (3D)
  // or with the hidden coordinate of `ref` (projections).
  function unproject(vp, x, y, depth, ref) {
    const cx = vp.x + vp.w / 2, cy = vp.y + vp.h / 2
    const s = 0.5 * Math.min(vp.w, vp.h) / (scene.extent / scene.zoom)
    const [ox, oy, oz] = scene.center
    if (vp.kind === "3d") {
      const cyaw = Math.cos(scene.yaw), syaw = Math.sin(scene.yaw)
      const cp = Math.cos(scene.pitch), sp = Math.sin(scene.pitch)
      const distance = 6 * scene.extent / scene.zoom
      const f = distance / Math.max(distance - depth, 0.1 * distance)
      const x1 = (x - cx) / (s * f), y2 = -(y - cy) / (s * f)
      // Camera axes in world coordinates (rows of the rotation in projector()).
      const v = unwarp([
        cyaw * x1 + cp * syaw * y2 - sp * syaw * depth,
        -syaw * x1 + cp * cyaw * y2 - sp * cyaw * depth,
        sp * y2 + cp * depth,
      ])
      return [ox + v[0], oy + v[1], oz + v[2]]
    }
    const a = {xy: 0, xz: 0, yz: 1}[vp.kind], b = {xy: 1, xz: 2, yz: 2}[vp.kind]
    // The hidden coordinate is ref's: its drawn offset is warped too, then the whole offset unwarped.
    const v = warp([ref[0] - ox, ref[1] - oy, ref[2] - oz])
    v[a] = (x - cx) / s
    v[b] = -(y - cy) / s
    unwarp(v)
    return [ox + v[0], oy + v[1], oz + v[2]]
  }

  // -------------------------------------------------------------- edit mode: drawing
  function drawEditOverlay(vp, project, screen) {
    // Velocity arrows (every body up to MAX_ARROWS, else the selected one), a ring round the
    // selected body, a cross at the centre of mass and a hint. Returns the tips' pixels.
    const n = scene.n, p = scene.position, v = scene.velocity, k = scene.arrowScale
    const tips = new Float32Array(3 * n).fill(NaN)
    const selected = model.selected
    if (v && k > 0) {
      ctx.lineWidth = 1.5
      for (let i = 0; i < n; i++) {
        if (n > MAX_ARROWS && i !== selected) continue
        project(p[3 * i] + k * v[3 * i], p[3 * i + 1] + k * v[3 * i + 1], p[3 * i + 2] + k * v[3 * i + 2], tips, 3 * i)
        const x0 = screen[3 * i], y0 = screen[3 * i + 1], x1 = tips[3 * i], y1 = tips[3 * i + 1]
        if (![x0, y0, x1, y1].every(Number.isFinite)) continue
        const colour = i === selected ? "rgba(255,255,255,0.95)" : "rgba(255,220,120,0.85)"
        ctx.strokeStyle = colour
        ctx.fillStyle = colour
        ctx.beginPath()
        ctx.moveTo(x0, y0)
        ctx.lineTo(x1, y1)
        ctx.stroke()
        const len = Math.hypot(x1 - x0, y1 - y0)
        if (len > 6) {
          const ux = (x1 - x0) / len, uy = (y1 - y0) / len
          ctx.beginPath()
          ctx.moveTo(x1, y1)
          ctx.lineTo(x1 - 8 * ux - 4 * uy, y1 - 8 * uy + 4 * ux)
          ctx.lineTo(x1 - 8 * ux + 4 * uy, y1 - 8 * uy - 4 * ux)
          ctx.closePath()
          ctx.fill()
        }
        ctx.beginPath()  // the handle to drag
        ctx.arc(x1, y1, 4, 0, 2 * Math.PI)
        ctx.stroke()
      }
    }
    if (selected >= 0 && selected < n) {
      const x = screen[3 * selected], y = screen[3 * selected + 1]
      if (Number.isFinite(x) && Number.isFinite(y)) {
        ctx.strokeStyle = "rgba(255,255,255,0.95)"
        ctx.lineWidth = 2
        ctx.setLineDash([4, 3])
        ctx.beginPath()
        ctx.arc(x, y, (radius[selected] || 2) + 6, 0, 2 * Math.PI)
        ctx.stroke()
        ctx.setLineDash([])
      }
    }
    const c = centerOfMass(), at = new Float64Array(3)
    project(c[0], c[1], c[2], at, 0)
    if (Number.isFinite(at[0]) && Number.isFinite(at[1])) {
      ctx.strokeStyle = "rgba(255,255,255,0.7)"
      ctx.lineWidth = 1
      ctx.beginPath()
      ctx.moveTo(at[0] - 6, at[1]); ctx.lineTo(at[0] + 6, at[1])
      ctx.moveTo(at[0], at[1] - 6); ctx.lineTo(at[0], at[1] + 6)
      ctx.stroke()
    }
    if (vp === scene.viewports[0]) {
      ctx.fillStyle = "rgba(255,220,120,0.95)"
      ctx.font = "12px sans-serif"
      ctx.fillText("Editing: drag a body or an arrow tip · shift-click adds · Delete removes",
                   vp.x + 10, vp.y + 54)
    }
    return tips
  }

  // -------------------------------------------------------------- edit mode: input
  let editDrag = null   // {kind: "move" | "velocity", index, vp, v (viewport index), depth, moved}

  function pick(x, y, v) {
    // What is under pixel (x, y) in viewport v: a body's disc first (a body at rest has its
    // arrow tip on itself), then an arrow tip, then a body within PICK_SLOP of its disc.
    const screen = scene.projected[v], tips = scene.tips[v]
    const nearest = (points, reach) => {
      let best = -1, bestDistance = Infinity
      for (let i = 0; points && i < scene.n; i++) {
        const d = Math.hypot(points[3 * i] - x, points[3 * i + 1] - y)
        if (d <= reach(i) && d < bestDistance) { best = i; bestDistance = d }
      }
      return best
    }
    let i = nearest(screen, (j) => radius[j] || 2)
    if (i >= 0) return {kind: "move", index: i}
    i = nearest(tips, () => 5 + PICK_SLOP)
    if (i >= 0) return {kind: "velocity", index: i}
    i = nearest(screen, (j) => (radius[j] || 2) + PICK_SLOP)
    return i >= 0 ? {kind: "move", index: i} : null
  }

  function editPointerDown(event, x, y, vp) {
    const v = scene.viewports.indexOf(vp)
    if (v < 0) return false
    const hit = pick(x, y, v)
    if (hit === null) {
      if (!event.shiftKey) return false   // the camera's drag
      const world = unproject(vp, x, y, 0, scene.center)
      if (world.every(Number.isFinite)) model.send_msg({type: "edit", action: "add", vector: world})
      return true
    }
    const i = hit.index
    select(i)
    if (event.altKey) hit.kind = "velocity"   // alt-drag a body: draw its velocity from the body out
    const tipDepth = hit.kind === "velocity" && scene.tips[v] ? scene.tips[v][3 * i + 2] : NaN
    const depth = Number.isFinite(tipDepth) ? tipDepth : scene.projected[v][3 * i + 2]
    editDrag = {kind: hit.kind, index: i, vp, v, depth, moved: false}
    canvas.style.cursor = "grabbing"
    return true
  }

  function editPointerMove(event) {
    const rect = canvas.getBoundingClientRect()
    const d = editDrag, i = d.index, p = scene.position
    const body = [p[3 * i], p[3 * i + 1], p[3 * i + 2]]
    if (d.kind === "move") {
      const world = unproject(d.vp, event.clientX - rect.left, event.clientY - rect.top, d.depth, body)
      if (!world.every(Number.isFinite)) return
      p.set(world, 3 * i)   // shown at once; the server's edited state replaces it on release
    } else if (scene.velocity && scene.arrowScale > 0) {
      const k = scene.arrowScale, vel = scene.velocity
      const tip = [body[0] + k * vel[3 * i], body[1] + k * vel[3 * i + 1], body[2] + k * vel[3 * i + 2]]
      const world = unproject(d.vp, event.clientX - rect.left, event.clientY - rect.top, d.depth, tip)
      if (!world.every(Number.isFinite)) return
      vel.set([(world[0] - body[0]) / k, (world[1] - body[1]) / k, (world[2] - body[2]) / k], 3 * i)
    }
    d.moved = true
    scene.dirty = true
  }

  function editPointerUp(event) {
    const d = editDrag
    editDrag = null
    canvas.style.cursor = "grab"
    if (!d.moved || event.type !== "pointerup") return   // a click selects; a cancelled drag sends nothing
    const i = d.index
    const source = d.kind === "move" ? scene.position : scene.velocity
    if (!source) return
    model.send_msg({type: "edit", action: d.kind, index: i, vector: Array.from(source.subarray(3 * i, 3 * i + 3))})
  }

  function editHover(event) {
    if (scene.n > 2000) return   // picking scans every body
    const rect = canvas.getBoundingClientRect()
    const x = event.clientX - rect.left, y = event.clientY - rect.top
    const v = scene.viewports.indexOf(viewportAt(x, y))
    canvas.style.cursor = v >= 0 && pick(x, y, v) ? "pointer" : "grab"
  }

  // -------------------------------------------------------------- predict mode: drawing
  const PREDICT_PLANES = {xy: [0, 1], xz: [0, 2], yz: [1, 2]}
  const PREDICT_COLOR = "rgba(255,255,255,0.95)"
  const PREDICT_CLOSEST = "rgba(0,158,115,1)"   // Okabe-Ito bluish green: the closest guess
  const PREDICT_PATH = "rgba(240,228,66,0.95)"  // Okabe-Ito yellow: the true path

  function predictMarksShown() {
    const marks = model.predict_marks || {}
    return (marks.guesses && marks.guesses.length > 0) || (marks.path && marks.path.length > 0)
  }

  // The world point drawn at pixel (x, y) of a projection viewport: its two shown coordinates.
  function predictPlanePoint(vp, x, y) {
    const axes = PREDICT_PLANES[vp.kind]
    if (!axes) return null
    const cx = vp.x + vp.w / 2, cy = vp.y + vp.h / 2
    const s = 0.5 * Math.min(vp.w, vp.h) / (scene.extent / scene.zoom)
    const v = [0, 0, 0]  // drawn offset from the centre, in the plane (inverse of the log drawing)
    v[axes[0]] = (x - cx) / s
    v[axes[1]] = -(y - cy) / s
    unwarp(v)
    return [scene.center[axes[0]] + v[axes[0]], scene.center[axes[1]] + v[axes[1]]]
  }

  // Pixel of a guess [plane, a, b] in viewport vp (null when vp shows another plane).
  function predictGuessPixel(vp, guess, project) {
    const axes = PREDICT_PLANES[guess[0]]
    if (!axes || vp.kind !== guess[0]) return null
    const world = [scene.center[0], scene.center[1], scene.center[2]]
    world[axes[0]] = guess[1]
    world[axes[1]] = guess[2]
    const out = new Float64Array(3)
    project(world[0], world[1], world[2], out, 0)
    return [out[0], out[1]]
  }

  function drawPredictOverlay(vp, project, screen) {
    const marks = model.predict_marks || {}
    const guesses = marks.guesses || [], labels = marks.labels || [], path = marks.path || []
    const body = model.predict_body
    const v = scene.viewports.indexOf(vp)
    ctx.save()
    // The body to predict: a solid ring.
    if (body >= 0 && body < scene.n) {
      const x = screen[3 * body], y = screen[3 * body + 1]
      if (Number.isFinite(x) && Number.isFinite(y)) {
        ctx.strokeStyle = PREDICT_PATH
        ctx.lineWidth = 2
        ctx.beginPath()
        ctx.arc(x, y, (radius[body] || 2) + 9, 0, 2 * Math.PI)
        ctx.stroke()
      }
    }
    // The true path (after a reveal): a thick line, the answer a filled disc.
    const pathPixels = new Float32Array(2 * path.length)
    if (path.length > 1) {
      const out = new Float64Array(3)
      ctx.strokeStyle = PREDICT_PATH
      ctx.lineWidth = 3
      ctx.lineJoin = "round"
      ctx.beginPath()
      path.forEach((point, k) => {
        project(point[0], point[1], point[2], out, 0)
        pathPixels[2 * k] = out[0]
        pathPixels[2 * k + 1] = out[1]
        if (k === 0) ctx.moveTo(out[0], out[1]); else ctx.lineTo(out[0], out[1])
      })
      ctx.stroke()
      const end = path.length - 1
      ctx.fillStyle = PREDICT_PATH
      ctx.beginPath()
      ctx.arc(pathPixels[2 * end], pathPixels[2 * end + 1], 6, 0, 2 * Math.PI)
      ctx.fill()
    }
    predictState.pathPixels[v] = pathPixels
    // The guesses: numbered crosses in their own plane; after a reveal, a dotted line to the
    // answer and the distance.
    const guessPixels = []
    guesses.forEach((guess, k) => {
      const at = predictGuessPixel(vp, guess, project)
      guessPixels.push(at)
      if (at === null || !at.every(Number.isFinite)) return
      const [x, y] = at
      const colour = k === marks.closest ? PREDICT_CLOSEST : PREDICT_COLOR
      if (path.length > 1) {
        const end = path.length - 1
        ctx.strokeStyle = colour
        ctx.lineWidth = 1
        ctx.setLineDash([3, 3])
        ctx.beginPath()
        ctx.moveTo(x, y)
        ctx.lineTo(pathPixels[2 * end], pathPixels[2 * end + 1])
        ctx.stroke()
        ctx.setLineDash([])
      }
      ctx.strokeStyle = colour
      ctx.lineWidth = k === marks.closest ? 3 : 2
      ctx.beginPath()
      ctx.moveTo(x - 7, y - 7); ctx.lineTo(x + 7, y + 7)
      ctx.moveTo(x - 7, y + 7); ctx.lineTo(x + 7, y - 7)
      ctx.stroke()
      ctx.fillStyle = colour
      ctx.font = "bold 13px sans-serif"
      ctx.fillText(labels[k] || String(k + 1), x + 10, y - 8)
    })
    predictState.guessPixels[v] = guessPixels
    if (model.predicting && vp === scene.viewports[0]) {
      ctx.fillStyle = PREDICT_PATH
      ctx.font = "13px sans-serif"
      const where = PREDICT_PLANES[vp.kind] || scene.viewports.some(other => PREDICT_PLANES[other.kind])
        ? "click a projection where you think the ringed body will be" : "switch to a projection (xy, xz, yz) to place guesses"
      ctx.fillText(`Predict: ${where}`, vp.x + 10, vp.y + 72)
    }
    ctx.restore()
  }

  // -------------------------------------------------------------- predict mode: input
  const predictState = {down: null, pathPixels: [], guessPixels: []}

  canvas.addEventListener("pointerdown", (event) => {
    predictState.down = model.predicting ? [event.clientX, event.clientY] : null
  })
  canvas.addEventListener("pointerup", (event) => {
    const down = predictState.down
    predictState.down = null
    // A click, not a drag (a drag pans the projection as usual).
    if (!model.predicting || down === null || Math.hypot(event.clientX - down[0], event.clientY - down[1]) >= 4) return
    const rect = canvas.getBoundingClientRect()
    const x = event.clientX - rect.left, y = event.clientY - rect.top
    const vp = viewportAt(x, y)
    const point = vp ? predictPlanePoint(vp, x, y) : null
    if (point === null || !point.every(Number.isFinite)) return
    model.send_msg({type: "guess", plane: vp.kind, a: point[0], b: point[1]})
  })

  function predictApi() {
    // For tests: the marks as received, and where they were drawn (CSS px) in viewport v.
    return {
      predicting: () => !!model.predicting,
      predictMarks: () => model.predict_marks || {},
      predictPathPixels: (v = 0) => {
        const p = predictState.pathPixels[v]
        return p ? Array.from({length: p.length / 2}, (_, k) => [p[2 * k], p[2 * k + 1]]) : []
      },
      predictGuessPixels: (v = 0) => predictState.guessPixels[v] || [],
      planePoint: (x, y, v = 0) => scene.viewports[v] ? predictPlanePoint(scene.viewports[v], x, y) : null,
    }
  }

  // -------------------------------------------------------------- animation loop
  function tick(now) {
    if (!scene.alive) return
    advance(now)
    if (scene.dirty) {
      draw()
      scene.draws++
      if (scene.fresh) {
        scene.painted++
        scene.paintTimes.push(now)
        if (scene.paintLog !== null && scene.paintLog.length < 2000) {
          scene.paintLog.push({index: scene.index, next: scene.buffer.length ? scene.buffer[0].index : null,
                               alpha: scene.alpha, position: Array.from(scene.position), time: now})
        }
        if (scene.acked[0] !== scene.runId || scene.acked[1] !== scene.index) {
          scene.acked = [scene.runId, scene.index]
          model.drawn = [scene.runId, scene.index]  // acknowledges the frame played: the server's flow control
        }
      }
      scene.fresh = false
      scene.dirty = false
    }
    while (scene.paintTimes.length && now - scene.paintTimes[0] > 1000) scene.paintTimes.shift()
    if (now - scene.lastReport > REPORT_MS) {
      scene.lastReport = now
      if (scene.painted !== scene.reported) {
        scene.reported = scene.painted
        model.painted = scene.painted
        model.paint_rate = scene.paintTimes.length
      } else if (model.paint_rate !== 0 && !scene.paintTimes.length) {
        model.paint_rate = 0
      }
    }
    requestAnimationFrame(tick)
  }

  // -------------------------------------------------------------- input
  let drag = null
  function viewportAt(x, y) {
    return scene.viewports.find(vp => x >= vp.x && x < vp.x + vp.w && y >= vp.y && y < vp.y + vp.h) || scene.viewports[0]
  }
  canvas.addEventListener("pointerdown", (event) => {
    const rect = canvas.getBoundingClientRect()
    const vp = viewportAt(event.clientX - rect.left, event.clientY - rect.top)
    if (model.editing && !model.predicting && editPointerDown(event, event.clientX - rect.left, event.clientY - rect.top, vp)) {
      canvas.setPointerCapture(event.pointerId)
      return
    }
    drag = {x: event.clientX, y: event.clientY, x0: event.clientX, y0: event.clientY, kind: vp ? vp.kind : "3d", vp}
    canvas.setPointerCapture(event.pointerId)
    canvas.style.cursor = "grabbing"
  })
  canvas.addEventListener("pointermove", (event) => {
    if (editDrag !== null) { editPointerMove(event); return }
    if (drag === null) { if (model.editing) editHover(event); return }
    const dx = event.clientX - drag.x, dy = event.clientY - drag.y
    drag.x = event.clientX
    drag.y = event.clientY
    if (drag.kind === "3d") {
      scene.yaw += 0.01 * dx
      scene.pitch = Math.max(-Math.PI / 2, Math.min(Math.PI / 2, scene.pitch + 0.01 * dy))
    } else {
      // Projections pan: move the centre along the two axes shown.
      const s = 0.5 * Math.min(drag.vp.w, drag.vp.h) / (scene.extent / scene.zoom)
      const a = {xy: 0, xz: 0, yz: 1}[drag.kind], b = {xy: 1, xz: 2, yz: 2}[drag.kind]
      scene.center[a] -= dx / s
      scene.center[b] += dy / s
    }
    scene.dirty = true
  })
  const endDrag = (event) => {
    if (editDrag !== null) {
      if (canvas.hasPointerCapture(event.pointerId)) canvas.releasePointerCapture(event.pointerId)
      editPointerUp(event)
      return
    }
    if (drag !== null && canvas.hasPointerCapture(event.pointerId)) canvas.releasePointerCapture(event.pointerId)
    // Edit mode: a click (no drag) on empty space clears the selection.
    if (drag !== null && model.editing && event.type === "pointerup" && Math.hypot(event.clientX - drag.x0, event.clientY - drag.y0) < 3) select(-1)
    drag = null
    canvas.style.cursor = "grab"
  }
  canvas.addEventListener("pointerup", endDrag)
  canvas.addEventListener("pointercancel", endDrag)
  canvas.addEventListener("wheel", (event) => {
    event.preventDefault()
    scene.zoom = Math.max(1e-3, Math.min(1e4, scene.zoom * Math.exp(-0.0015 * event.deltaY)))
    scene.dirty = true
  }, {passive: false})
  canvas.addEventListener("dblclick", () => fit())

  // -------------------------------------------------------------- model wiring
  model.on("msg:custom", receive)
  model.on(["color_by"], () => { scene.colorRange = [0, 0]; updateColors(); scene.dirty = true })
  model.on(["size_by_mass"], () => { updateSizes(); scene.dirty = true })
  model.on(["view", "trails", "background", "length_unit", "distance_scale"], () => { scene.dirty = true })
  model.on(["trail_length"], () => { resizeTrail(); pushTrail(); scene.dirty = true })
  model.on(["follow_com"], () => { if (model.follow_com) followCenter(); scene.dirty = true })
  model.on(["palette", "categorical"], () => {
    palette = (model.palette || []).map(parseColor)
    categorical = (model.categorical || []).map(parseColor)
    updateColors()
    scene.dirty = true
  })
  model.on("refit", () => fit())
  model.on(["playing"], () => { if (!model.playing) freeze(); scene.lastTick = null })
  model.on(["editing"], () => { if (model.editing) setArrowScale(); if (!model.editing) editDrag = null; scene.dirty = true })
  model.on(["selected"], () => { scene.dirty = true })
  model.on(["predicting", "predict_body", "predict_marks"], () => { scene.dirty = true })
  const observer = new ResizeObserver(() => { scene.dirty = true })
  observer.observe(canvas)

  // Hidden page or hidden tab (display: none): tell the server, which pauses the stream.
  function reportVisible() {
    const visible = document.visibilityState === "visible" && canvas.getClientRects().length > 0
    if (model.page_visible !== visible) model.page_visible = visible
  }
  document.addEventListener("visibilitychange", reportVisible)
  const intersection = new IntersectionObserver(reportVisible)
  intersection.observe(canvas)

  // A handle for tests and benchmarks: window.nbodyScenes[name].
  const api = {
    canvas,
    painted: () => scene.painted,
    pending: () => scene.dirty,
    draws: () => scene.draws,
    frameIndex: () => scene.index,
    time: () => scene.time,
    buffered: () => scene.buffer.length,
    drops: () => scene.drops,
    // Tests: record every painted frame ({index, next, alpha, position (flat), time}).
    recordPaints: (on = true) => { scene.paintLog = on ? [] : null },
    paints: () => scene.paintLog || [],
    runId: () => scene.runId,
    numBodies: () => scene.n,
    positions: () => Array.from({length: scene.n}, (_, i) => Array.from(scene.position.subarray(3 * i, 3 * i + 3))),
    trailCount: () => scene.trailCount,
    offscreen: () => scene.offscreen,
    distanceScale: () => model.distance_scale,
    camera: () => ({center: [...scene.center], extent: scene.extent, zoom: scene.zoom, yaw: scene.yaw, pitch: scene.pitch}),
    // Screen position (CSS px, relative to the canvas) of body i in viewport v.
    bodyPixel: (i, v = 0) => {
      const s = scene.projected[v]
      return s ? [s[3 * i], s[3 * i + 1]] : null
    },
    colorOf: (i) => colorTable[colorIndex[i]] || null,
    colorBy: () => model.color_by,
    // Edit mode: velocities as received, the arrow-tip pixel of body i in viewport v, the
    // selected body, and the world point under a pixel (at body i's depth, or the centre's).
    velocities: () => scene.velocity ? Array.from({length: scene.n}, (_, i) => Array.from(scene.velocity.subarray(3 * i, 3 * i + 3))) : null,
    tipPixel: (i, v = 0) => {
      const t = scene.tips[v]
      return t ? [t[3 * i], t[3 * i + 1]] : null
    },
    selected: () => model.selected,
    editing: () => !!model.editing,
    arrowScale: () => scene.arrowScale,
    worldAt: (x, y, v = 0, i = -1) => {
      const vp = scene.viewports[v]
      if (!vp) return null
      const depth = i >= 0 && scene.projected[v] ? scene.projected[v][3 * i + 2] : 0
      return unproject(vp, x, y, depth, i >= 0 ? scene.position.subarray(3 * i, 3 * i + 3) : scene.center)
    },
    onFrame: (callback) => { listeners.push(callback) },
  }
  Object.assign(api, predictApi())
  window.nbodyScenes = window.nbodyScenes || {}
  window.nbodyScenes[model.name] = api

  model.on("remove", () => {
    scene.alive = false
    observer.disconnect()
    intersection.disconnect()
    document.removeEventListener("visibilitychange", reportVisible)
    if (window.nbodyScenes && window.nbodyScenes[model.name] === api) delete window.nbodyScenes[model.name]
  })

  requestAnimationFrame(tick)
  reportVisible()
  model.send_msg({type: "ready"})  // the server answers with the current frame
}
