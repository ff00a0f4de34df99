// The page's Gaussian-splat viewer: draws each `.dx-splat` element's scene with the vendored gsplat.js.
// data-scene = {"files": [url, ...], "times": [t, ...], "position": [x, y, z], "target": [x, y, z]}:
// one .splat (3D) or one per time (4D, with a time slider); the camera starts at `position`, turning
// about `target` (world units of the scene). Sets data-state="ready" once the first frame is drawn.
import * as SPLAT from "./gsplat.js";

const HEIGHT = 420; // px

function vector(xyz) {
  return new SPLAT.Vector3(xyz[0], xyz[1], xyz[2]);
}

async function show(element) {
  const scene = JSON.parse(element.dataset.scene);
  element.dataset.shown = element.dataset.scene;
  element.dataset.state = "loading";
  element.replaceChildren();
  const canvas = document.createElement("canvas");
  canvas.className = "dx-canvas";
  element.append(canvas);
  const renderer = new SPLAT.WebGLRenderer(canvas);
  const camera = new SPLAT.Camera();
  camera.position = vector(scene.position);
  const controls = new SPLAT.OrbitControls(camera, canvas);
  const target = vector(scene.target);
  const distance = Math.max(1e-6, vector(scene.position).subtract(target).magnitude());
  controls.minZoom = distance * 0.05;
  controls.maxZoom = distance * 20;
  controls.setCameraTarget(target);
  const frames = await Promise.all(scene.files.map(async (url) => {
    // fetched here, with the session cookie (gsplat's own loader omits credentials, and the app serves
    // a session's files only to its browser)
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    const frame = new SPLAT.Scene();
    SPLAT.Loader.LoadFromArrayBuffer(await response.arrayBuffer(), frame);
    return frame;
  }));
  let shown = 0;
  if (scene.times.length > 1) {
    element.append(timeSlider(scene.times, (k) => { shown = k; element.dataset.time = scene.times[k].toFixed(2); }));
    element.dataset.time = scene.times[0].toFixed(2);
  }
  const resize = () => renderer.setSize(element.clientWidth || 640, HEIGHT);
  resize();
  new ResizeObserver(resize).observe(element);
  let drawn = 0;
  const frame = () => {
    if (!element.isConnected) return; // replaced by a newer scene
    controls.update();
    renderer.render(frames[shown], camera);
    if (++drawn === 30) element.dataset.state = "ready"; // a few frames: the depth sort has settled
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}

function timeSlider(times, onChange) {
  const bar = document.createElement("div");
  bar.className = "dx-time";
  const play = document.createElement("button");
  play.type = "button";
  play.textContent = "Play";
  const slider = document.createElement("input");
  slider.type = "range";
  slider.min = 0;
  slider.max = times.length - 1;
  slider.step = 1;
  slider.value = 0;
  slider.className = "dx-time-slider";
  const label = document.createElement("span");
  const pick = (k) => {
    slider.value = k;
    label.textContent = `time ${times[k].toFixed(2)} (0: the photo, 1: the end of the motion)`;
    onChange(k);
  };
  slider.addEventListener("input", () => pick(Number(slider.value)));
  let timer = null;
  play.addEventListener("click", () => {
    if (timer) {
      clearInterval(timer);
      timer = null;
      play.textContent = "Play";
      return;
    }
    play.textContent = "Pause";
    timer = setInterval(() => pick((Number(slider.value) + 1) % times.length), 250);
  });
  pick(0);
  bar.append(play, slider, label);
  return bar;
}

function scan() {
  for (const element of document.querySelectorAll(".dx-splat[data-scene]")) {
    if (element.dataset.shown !== element.dataset.scene) {
      show(element).catch((error) => {
        element.dataset.state = "failed";
        element.textContent = `The viewer could not open this scene (${error.message}); the downloads hold the same files.`;
      });
    }
  }
}

new MutationObserver(scan).observe(document.documentElement, { childList: true, subtree: true, attributes: true, attributeFilter: ["data-scene"] });
scan();
