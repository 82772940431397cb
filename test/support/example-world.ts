// The identities, keys and artifacts of the example world (shared/scenarios.md, examples/), named
// once for every test that replays the scenarios. examples/signals.yaml holds the same values.

export const DEPLOYER = "spiffe://example.org/ns/ci/sa/deployer";
export const RELEASE_PIPELINE = "spiffe://example.org/ns/ci/sa/release-pipeline";
export const SUPPORT_BOT = "spiffe://example.org/ns/agents/sa/support-bot";
export const ETL = "spiffe://example.org/ns/data/sa/etl";
export const IR_BOT = "spiffe://example.org/ns/secops/sa/ir-bot";
export const CRM_SYNC = "spiffe://example.org/ns/crm/sa/sync";

/** The release artifact the release pipeline signed (an attestation in examples/signals.yaml). */
export const SIGNED_DIGEST = "sha256:4f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a19";
/** Demo API keys (never real secrets) and their fingerprints. */
export const K1 = "demo-api-key-K1-0001";
export const K1_FP = "sha256:5758e9e1549258c7211b453c281275ace84e9bc6c07dc485c58c29e58c260bba";
export const K2 = "demo-api-key-K2-0002";
export const K2_FP = "sha256:2cebfb82a859f33ce971cad5bf90133202b9f97fa259b8b032442ea0a2eb2de8";
