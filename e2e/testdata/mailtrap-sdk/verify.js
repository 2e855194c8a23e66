'use strict';
// Checks a webhook delivery tokend made with the official Node SDK's own
// verifier (mailtrap@4.10.0's verifyWebhookSignature): the body as received
// (HOOK_BODY_FILE), its Mailtrap-Signature (HOOK_SIGNATURE) and the webhook's
// signing secret (HOOK_SECRET). Prints {"valid": ..., "tampered": ...}.
const fs = require('fs');
const { verifyWebhookSignature } = require('mailtrap');

const body = fs.readFileSync(process.env.HOOK_BODY_FILE);
const signature = process.env.HOOK_SIGNATURE;
const secret = process.env.HOOK_SECRET;
const tampered = Buffer.concat([body, Buffer.from(' ')]);
process.stdout.write(JSON.stringify({
  valid: verifyWebhookSignature(body, signature, secret),
  tampered: verifyWebhookSignature(tampered, signature, secret),
}) + '\n');
