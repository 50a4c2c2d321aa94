/**
 * `await using` needs Symbol.asyncDispose. Node 18.18 and 20.4 on define it;
 * on an older runtime it is defined here (a registered symbol, so another
 * polyfill that does the same agrees), before any class with such a method
 * is made. Imported for its effect only.
 */

const symbols = Symbol as unknown as { asyncDispose?: symbol; dispose?: symbol };
if (typeof symbols.asyncDispose !== "symbol") {
  Object.defineProperty(Symbol, "asyncDispose", { value: Symbol.for("Symbol.asyncDispose") });
}
if (typeof symbols.dispose !== "symbol") {
  Object.defineProperty(Symbol, "dispose", { value: Symbol.for("Symbol.dispose") });
}

export {};
