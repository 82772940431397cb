// Public surface of identity: SPIFFE IDs, peer certificates, XFCC, credential fingerprints, and
// the resolver that turns one request's attributes into a Caller.

export type { Caller, Credential, IdentityProblem, IdentityProblemCode, IdentitySource } from "./caller.js";
export {
  MAX_SPIFFE_ID_BYTES, MAX_TRUST_DOMAIN_BYTES, parseSpiffeId, parseWorkloadSpiffeId, spiffeIdProblem,
  type SpiffeId, type SpiffeIdParse, type SpiffeIdRejection,
} from "./spiffe.js";
export {
  parsePeerCertificate, splitSubjectAltNames,
  type PeerCertificate, type PeerCertificateParse, type PeerCertificateRejection, type SubjectAltName,
} from "./certificate.js";
export {
  callerFromXfcc, parseXfcc, selectTrustedXfccElement,
  type XfccElement, type XfccParse, type XfccSelection,
} from "./xfcc.js";
export {
  FINGERPRINT_PREFIX, MAX_CREDENTIALS, findCredentials, fingerprintSecret, isFingerprint, readCredential, readCredentialHeader,
  type CredentialRead,
} from "./credential.js";
export {
  createCallerResolver, resolveCaller,
  type CallerInput, type CallerResolver, type CallerResolverOptions,
} from "./resolve.js";
