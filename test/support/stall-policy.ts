// The policy behind the stall cases of issue #8 (multi-star globs, catastrophic regexes in CEL
// `matches`, a comprehension over `split`), shared by the hostile e2e table that asserts outcomes
// and bench/stalls.bench.ts that times them, so both exercise the same rules.

export const KB60 = 60_000;

export const STALL_POLICY = `apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: mesh }
spec:
  destinations: ["*.*.svc.cluster.local"]
  rules:
    - name: files
      methods: [GET]
      paths: ["/files/*.*.*"]
      outcome: allow
---
apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: regex-api }
spec:
  destinations: ["regex-api"]
  rules:
    - name: nested-plus
      methods: [GET]
      paths: ["/re/**"]
      when: 'request.path.matches("^/re/(a+)+$")'
      outcome: allow
    - name: words
      methods: [GET]
      paths: ["/hdr"]
      when: '"x-id" in request.headers && request.headers["x-id"].matches("^(\\\\w+\\\\s?)*$")'
      outcome: allow
    - name: characters
      methods: [GET]
      paths: ["/split/**"]
      when: '!request.path.split("").exists(c, request.path.endsWith(c + "!"))'
      outcome: allow
`;
