// What a compiled condition runs against, shared by the cel-js interpreter (cel.ts) and the
// direct evaluator (cel-direct.ts) without either importing the other.

import type { ActionView, EntityView, PolicyInput, RequestView, SignalsView, SourceView } from "../model/views.js";

/** What a condition is evaluated against; built once per decision, only if a condition runs. */
export interface CelActivation {
  request: RequestView;
  source: SourceView;
  context: Record<string, string>;
  signals: SignalsView;
  subject: EntityView;
  resource: EntityView;
  action: ActionView;
  now: Date;
}

export function celActivation(input: PolicyInput): CelActivation {
  return {
    request: input.request,
    source: input.source,
    context: input.context,
    signals: input.signals,
    subject: input.subject,
    resource: input.resource,
    action: input.action,
    now: new Date(input.now),
  };
}

/** Returns true or false, or throws when the expression cannot be evaluated for this input. */
export type Condition = (activation: CelActivation) => boolean;
