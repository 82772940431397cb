// HTML built from templates that escape every interpolated value. Caller names, paths, reasons,
// MCP tool names and signal data are chosen by whoever sent the request: nothing reaches a page
// unescaped unless it is itself an Html built here. Attribute values are always quoted in the
// templates, and the escaping covers both text and quoted attributes.

/** Markup that is already safe to write into a page. */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

type Part = Html | string | number | boolean | null | undefined | readonly Part[];

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;", "`": "&#96;" };

/** Text made safe for an HTML text node or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (c) => ESCAPES[c] ?? c);
}

function render(part: Part): string {
  if (part instanceof Html) return part.value;
  if (Array.isArray(part)) return (part as readonly Part[]).map(render).join("");
  if (part === null || part === undefined || part === false) return "";
  return escapeHtml(String(part));
}

/** A template whose every `${value}` is escaped unless it is an Html (or an array of them). */
export function html(strings: TemplateStringsArray, ...values: Part[]): Html {
  let out = strings[0] ?? "";
  for (let i = 0; i < values.length; i += 1) out += render(values[i]) + (strings[i + 1] ?? "");
  return new Html(out);
}

/** A URL path segment or query value, encoded (for hrefs built from a value a caller chose). */
export function urlPart(value: string): string {
  return encodeURIComponent(value);
}
