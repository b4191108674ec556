
/** Resolves at once: in Node the module is instantiated when loaded. Takes the web build's arguments, and ignores them. */
declare function init(options?: unknown): Promise<void>;
export default init;
export { init };
/** Does nothing: in Node the module is instantiated when loaded. */
export function initSync(options?: unknown): void;
