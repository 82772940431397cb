// Servers under test with a decision of the test's own making: AuthzServerOptions.judge from a
// function that returns the Decision (the pipeline's Judgement carries nothing else they read).

import type { Judgement } from "../../src/decision/index.js";
import type { AccessRequest, Decision } from "../../src/model/index.js";

export function judgeBy(decide: (req: AccessRequest) => Decision): (req: AccessRequest) => Judgement {
  return (request) => ({ request, decision: decide(request) });
}
