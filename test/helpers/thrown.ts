/** What `fn` throws (the assertion fails if it returns). Typed-error assertions build on it. */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected the call to throw, but it returned');
}
