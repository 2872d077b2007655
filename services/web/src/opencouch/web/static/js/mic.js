// The microphone, opened once per conversation (a reconnect reuses it), and its live level.

/** Throws the browser's error; micProblem says what it means. */
export function openMicrophone() {
  if (!navigator.mediaDevices?.getUserMedia) return Promise.reject(new DOMException('needs a secure context', 'SecurityError'));
  return navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
}

/** RMS of `samples` as 0..1 on a -60..0 dBFS scale. @param {Float32Array} samples */
export function level(samples) {
  const rms = Math.sqrt(samples.reduce((sum, s) => sum + s * s, 0) / (samples.length || 1));
  return Math.min(1, Math.max(0, (20 * Math.log10(rms || 1e-9) + 60) / 60));
}

export class LevelMeter {
  /**
   * Calls `onLevel(0..1)` each frame, or 4 times a second for people who prefer reduced motion.
   * @param {MediaStream} stream @param {(level: number) => void} onLevel
   */
  constructor(stream, onLevel) {
    this.context = new AudioContext();
    void this.context.resume();
    const analyser = this.context.createAnalyser();
    this.context.createMediaStreamSource(stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const calm = matchMedia('(prefers-reduced-motion: reduce)').matches;
    this.running = true;
    const tick = () => {
      if (!this.running) return;
      analyser.getFloatTimeDomainData(samples);
      onLevel(level(samples));
      if (calm) setTimeout(tick, 250);
      else requestAnimationFrame(tick);
    };
    tick();
  }

  stop() {
    this.running = false;
    void this.context.close();
  }
}
