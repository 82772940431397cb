// Small policy documents for loader and reload tests.

/** One policy with a single rule "everything" answering `outcome` on `destination`. */
export function policyYaml(name: string, outcome = "allow", destination = name): string {
  return `apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata:
  name: ${name}
spec:
  destinations: ["${destination}"]
  rules:
    - name: everything
      outcome: ${outcome}
`;
}
