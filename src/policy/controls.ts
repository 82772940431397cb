// The controls a rule may say it enforces, with the frameworks' own identifiers, so a decision
// log can be summarised per control for the people who report against those frameworks
// (`vigil evidence`). A closed catalogue: a misspelt control is a load error, never evidence for
// a control nobody asked about.
//
//   OWASP Non-Human Identities Top 10 (2025): NHI1 … NHI10
//   NIST SP 800-207 (Zero Trust Architecture): the seven tenets of §2.1, and §3.3 (trust algorithm)
//   NIST CSF 2.0: PR.AA (Identity Management, Authentication, and Access Control) outcomes

export interface Control {
  id: string;
  framework: string;
  title: string;
}

const OWASP_NHI = "OWASP NHI Top 10 (2025)";
const ZTA = "NIST SP 800-207";
const CSF = "NIST CSF 2.0";

export const CONTROLS: readonly Control[] = Object.freeze([
  { id: "NHI1", framework: OWASP_NHI, title: "Improper Offboarding" },
  { id: "NHI2", framework: OWASP_NHI, title: "Secret Leakage" },
  { id: "NHI3", framework: OWASP_NHI, title: "Vulnerable Third-Party NHI" },
  { id: "NHI4", framework: OWASP_NHI, title: "Insecure Authentication" },
  { id: "NHI5", framework: OWASP_NHI, title: "Overprivileged NHI" },
  { id: "NHI6", framework: OWASP_NHI, title: "Insecure Cloud Deployment Configurations" },
  { id: "NHI7", framework: OWASP_NHI, title: "Long-Lived Secrets" },
  { id: "NHI8", framework: OWASP_NHI, title: "Environment Isolation" },
  { id: "NHI9", framework: OWASP_NHI, title: "NHI Reuse" },
  { id: "NHI10", framework: OWASP_NHI, title: "Human Use of NHI" },
  { id: "SP800-207:2.1.1", framework: ZTA, title: "Tenet 1: all data sources and computing services are resources" },
  { id: "SP800-207:2.1.2", framework: ZTA, title: "Tenet 2: all communication is secured regardless of network location" },
  { id: "SP800-207:2.1.3", framework: ZTA, title: "Tenet 3: access to individual resources is granted per session" },
  { id: "SP800-207:2.1.4", framework: ZTA, title: "Tenet 4: access is determined by dynamic policy, including observable state and behaviour" },
  { id: "SP800-207:2.1.5", framework: ZTA, title: "Tenet 5: the integrity and security posture of assets is monitored and measured" },
  { id: "SP800-207:2.1.6", framework: ZTA, title: "Tenet 6: authentication and authorization are dynamic and strictly enforced before access" },
  { id: "SP800-207:2.1.7", framework: ZTA, title: "Tenet 7: current state is collected and used to improve security posture" },
  { id: "SP800-207:3.3", framework: ZTA, title: "Trust algorithm: access decided from the request, subject, resource, and threat intelligence" },
  { id: "PR.AA-01", framework: CSF, title: "Identities and credentials for authorized users, services, and hardware are managed" },
  { id: "PR.AA-03", framework: CSF, title: "Users, services, and hardware are authenticated" },
  { id: "PR.AA-05", framework: CSF, title: "Access permissions, entitlements, and authorizations are defined in a policy, managed, enforced, and reviewed (least privilege, separation of duties)" },
]);

const BY_ID: ReadonlyMap<string, Control> = new Map(CONTROLS.map((c) => [c.id, c]));

export function findControl(id: string): Control | undefined {
  return BY_ID.get(id);
}

/** Why `id` is not a known control (with a hint for the usual slips), or undefined when it is. */
export function controlProblem(id: string): string | undefined {
  if (BY_ID.has(id)) return undefined;
  const upper = id.toUpperCase().replace(/\s+/g, "");
  const near = CONTROLS.find((c) => c.id.toUpperCase() === upper)
    ?? (/^PR\.AC-4$/i.test(id) ? BY_ID.get("PR.AA-05") : undefined);
  const hint = near !== undefined ? ` (did you mean ${near.id}?${/^PR\.AC/i.test(id) ? " CSF 2.0 replaced CSF 1.1's PR.AC-4 with PR.AA-05" : ""})` : "";
  return `unknown control "${id.slice(0, 40)}"${hint}; known: NHI1…NHI10, SP800-207:2.1.1…2.1.7, SP800-207:3.3, PR.AA-01, PR.AA-03, PR.AA-05`;
}
