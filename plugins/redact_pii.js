// PII redaction: the default conversation with personal data and secrets masked before any
// model sees it — e-mail addresses, phone numbers, payment card numbers (Luhn-checked), IBANs,
// and API keys / bearer tokens.
//
// Config:
//   preprocess:
//     preprocessor: redact_pii        # for every facet
//     plugins:
//       redact_pii: { path: plugins/redact_pii.js, on_error: skip }
//
// `on_error: skip` is the safe choice here: if redaction fails, nothing unredacted is sent.

const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g;
const CARD = /\b(?:\d[ -]?){12,18}\d\b/g;
const IBAN = /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b/g;
const PHONE = /(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?)?\d{2,4}[ .-]\d{2,4}[ .-]?\d{2,4}\b/g;
const SECRETS = [
  /\b(?:sk|pk|rk)-(?:proj-|live-|test-)?[A-Za-z0-9_-]{16,}\b/g, // OpenAI / Stripe style keys
  /\bAKIA[0-9A-Z]{16}\b/g, // AWS access key ids
  /\bgh[pousr]_[A-Za-z0-9]{30,}\b/g, // GitHub tokens
  /\bxox[abpr]-[A-Za-z0-9-]{10,}\b/g, // Slack tokens
  /\b[Bb]earer\s+[A-Za-z0-9._~+\/-]{16,}=*/g,
  /("?(?:api[_-]?key|secret|password|token)"?\s*[:=]\s*"?)[^"\s,}]{6,}/gi,
];

function luhn(digits) {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) { d *= 2; if (d > 9) d -= 9; }
    sum += d;
  }
  return sum % 10 === 0;
}

function redact(text) {
  for (const pattern of SECRETS) {
    text = text.replace(pattern, (match, prefix) =>
      typeof prefix === "string" && prefix.length > 0 && match.startsWith(prefix) ? prefix + "[SECRET]" : "[SECRET]");
  }
  text = text.replace(EMAIL, "[EMAIL]");
  text = text.replace(IBAN, "[IBAN]");
  text = text.replace(CARD, (match) => {
    const digits = match.replace(/[ -]/g, "");
    return digits.length >= 13 && luhn(digits) ? "[CARD]" : match;
  });
  text = text.replace(PHONE, (match) => (match.replace(/\D/g, "").length >= 7 ? "[PHONE]" : match));
  return text;
}

function preprocess(trace) {
  return defaultPreprocess(trace).map(redact);
}
