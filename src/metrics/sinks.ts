/**
 * `llm-backend-router/sinks`: the optional metric sinks (callback, fan-out, OpenTelemetry). Kept out of the
 * main entry, which holds only what the router itself runs (the HTTP sink), so they cost an app that does
 * not use them nothing in bundle size or import time.
 * @module
 */
export type { CallbackSinkOptions } from './callback-sink.js'
export { createCallbackSink } from './callback-sink.js'
export { fanoutSinks } from './fanout.js'
export type { OpenTelemetrySinkOptions, OtelMeter, OtelMeterProvider } from './otel-sink.js'
export { createOpenTelemetrySink } from './otel-sink.js'
