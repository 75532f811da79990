let handleErrors = 0;

/**
 * The load generator's WebRTC client (@livekit/rtc-node) can throw from its
 * native handle finalizers ("trying to drop an invalid handle") after a
 * connection it tore down is collected. That is the client library's, not the
 * code under test: such errors are counted (and reported); any other uncaught
 * error ends the benchmark.
 */
export function filterClientErrors(): void {
  process.on('uncaughtException', (err) => {
    if (/trying to drop an invalid handle/.test(String((err as Error)?.message))) {
      handleErrors++;
      return;
    }
    console.error(err);
    process.exit(1);
  });
}

export function clientHandleErrors(): number {
  return handleErrors;
}
