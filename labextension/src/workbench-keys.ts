/**
 * The workbench's keys (with it, or a button in it, focused): ←/→ step the
 * slider, ↑/↓ the image path, g/s/b/d the views, f/0 fit, 1 actual size, +/-
 * zoom. Inputs and selects keep their own keys.
 */
import type { Workbench } from './workbench';

export function workbenchKeys(
  bench: Workbench
): (event: KeyboardEvent) => void {
  const mode = (): string => bench.state.mode;
  const actions: Record<string, () => void> = {
    ArrowLeft: () => bench.step(-1),
    ArrowRight: () => bench.step(1),
    ArrowUp: () => bench.movePath(-1),
    ArrowDown: () => bench.movePath(1),
    d: () => bench.setMode(mode() === 'diff' ? 'grid' : 'diff'),
    s: () => bench.setMode(mode() === 'swipe' ? 'diff' : 'swipe'),
    b: () =>
      mode() === 'blink' ? bench.pane.toggleBlink() : bench.setMode('blink'),
    g: () => bench.setMode('grid'),
    f: () => bench.fit(),
    '0': () => bench.fit(),
    '1': () => bench.actualSize(),
    '+': () => bench.zoomBy(1.25),
    '=': () => bench.zoomBy(1.25),
    '-': () => bench.zoomBy(0.8)
  };
  return (event: KeyboardEvent): void => {
    const target = event.target as HTMLElement;
    if (event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    if (
      ['INPUT', 'SELECT', 'TEXTAREA'].includes(target.tagName) &&
      target.getAttribute('type') !== 'checkbox'
    ) {
      return; // the control's own keys (a range input steps itself)
    }
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      event.stopPropagation();
      action();
    }
  };
}
