// The part of autocannon's API the benches use (the package ships no types, and
// @types/autocannon would be one more dependency for four fields).
declare module "autocannon" {
  interface Options {
    url: string;
    method?: string;
    connections?: number;
    pipelining?: number;
    amount?: number;
    duration?: number;
    headers?: Record<string, string>;
    body?: string;
  }
  interface Histogram { average: number; p50: number; p99: number }
  interface Result {
    requests: Histogram;
    latency: Histogram;
    non2xx: number;
    errors: number;
  }
  function autocannon(options: Options, done: (err: unknown, result: Result) => void): unknown;
  export default autocannon;
}
