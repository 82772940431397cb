// Event-type URIs of the OpenID SSF, CAEP 1.0 and RISC 1.0 specifications, and the short names
// Vigil uses for them in metrics and logs. Shared with the bench and the CLI, which build SETs.

const CAEP_BASE = "https://schemas.openid.net/secevent/caep/event-type/";
const RISC_BASE = "https://schemas.openid.net/secevent/risc/event-type/";
const SSF_BASE = "https://schemas.openid.net/secevent/ssf/event-type/";

/** CAEP 1.0 event-type URIs. */
export const CAEP = {
  sessionRevoked: `${CAEP_BASE}session-revoked`,
  tokenClaimsChange: `${CAEP_BASE}token-claims-change`,
  credentialChange: `${CAEP_BASE}credential-change`,
  assuranceLevelChange: `${CAEP_BASE}assurance-level-change`,
  deviceComplianceChange: `${CAEP_BASE}device-compliance-change`,
  sessionEstablished: `${CAEP_BASE}session-established`,
  sessionPresented: `${CAEP_BASE}session-presented`,
  riskLevelChange: `${CAEP_BASE}risk-level-change`,
} as const;

/** RISC 1.0 event-type URIs. */
export const RISC = {
  accountCredentialChangeRequired: `${RISC_BASE}account-credential-change-required`,
  accountPurged: `${RISC_BASE}account-purged`,
  accountDisabled: `${RISC_BASE}account-disabled`,
  accountEnabled: `${RISC_BASE}account-enabled`,
  identifierChanged: `${RISC_BASE}identifier-changed`,
  identifierRecycled: `${RISC_BASE}identifier-recycled`,
  credentialCompromise: `${RISC_BASE}credential-compromise`,
  optIn: `${RISC_BASE}opt-in`,
  optOutInitiated: `${RISC_BASE}opt-out-initiated`,
  optOutCancelled: `${RISC_BASE}opt-out-cancelled`,
  optOutEffective: `${RISC_BASE}opt-out-effective`,
  recoveryActivated: `${RISC_BASE}recovery-activated`,
  recoveryInformationChanged: `${RISC_BASE}recovery-information-changed`,
  /** Deprecated by RISC 1.0 in favour of CAEP session-revoked; still accepted. */
  sessionsRevoked: `${RISC_BASE}sessions-revoked`,
} as const;

/** SSF 1.0 stream-management event-type URIs. */
export const SSF_EVENTS = {
  verification: `${SSF_BASE}verification`,
  streamUpdated: `${SSF_BASE}stream-updated`,
} as const;

/** Media type of a pushed SET (RFC 8935) and the matching JOSE `typ` (RFC 8417). */
export const SET_MEDIA_TYPE = "application/secevent+jwt";
export const SET_JOSE_TYPE = "secevent+jwt";

const KNOWN_URIS: ReadonlySet<string> = new Set<string>([
  ...Object.values(CAEP), ...Object.values(RISC), ...Object.values(SSF_EVENTS),
]);

/**
 * The metrics/log label for an event type: the last path segment for a URI defined by SSF, CAEP
 * or RISC (e.g. "risk-level-change"), "unknown" for anything else. The set of values is closed,
 * so the label's cardinality stays bounded whatever a transmitter sends.
 */
export function eventShortName(uri: string): string {
  if (!KNOWN_URIS.has(uri)) return "unknown";
  return uri.slice(uri.lastIndexOf("/") + 1);
}
