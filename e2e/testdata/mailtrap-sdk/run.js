'use strict';
// Drives Mailtrap's official Node SDK (mailtrap@4.10.0, unmodified) against a
// running tokend, through the recipe users copy: useTokend of
// examples/mailtrap-node/tokend.js. TestMailtrapNodeSDK in e2e/sdk_test.go
// copies this file next to that example and its fresh npm install, and runs
// it with:
//
//   TOKEND_URL         base URL of tokend, e.g. http://127.0.0.1:41234
//   TOKEND_TEST_KEY    a test key (tk_test_...) with admin on the account
//   TOKEND_ADMIN_KEY   the account's live admin key
//   TOKEND_ACCOUNT_ID  the account id
//   TOKEND_INBOX_ID    a sandbox of that account
//   TOKEND_DOMAIN      a sending domain of that account
//   TOKEND_HOOK_URL    a webhook receiver for run.js to subscribe
//
// It prints one JSON object with what it observed on stdout, and leaves the
// judging to the Go test. Any unexpected failure is printed on stderr and
// exits 1.

const https = require('https');

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

const base = env('TOKEND_URL');
const testKey = env('TOKEND_TEST_KEY');
const adminKey = env('TOKEND_ADMIN_KEY');
const accountId = Number(env('TOKEND_ACCOUNT_ID'));
const inboxId = Number(env('TOKEND_INBOX_ID'));
const domain = env('TOKEND_DOMAIN');
const hookURL = env('TOKEND_HOOK_URL');

// tokend is plain HTTP on loopback: any HTTPS request would be the SDK
// reaching the real Mailtrap, so refuse it rather than let it leave.
https.request = https.get = (...args) => {
  throw new Error(`the SDK made an HTTPS request (${String(args[0] && (args[0].href || args[0].hostname || args[0]))}): a request was not redirected to tokend`);
};

const { MailtrapClient } = require('mailtrap');
const { useTokend } = require('./tokend');
const sdkVersion = require('mailtrap/package.json').version;

// asked is every origin the SDK asked for, before useTokend sent the request
// to tokend. Axios runs a client's request interceptors newest first (its
// legacy order, the default of 1.x) or oldest first, so a recorder on each
// side of useTokend's sees the URL before the rewrite.
const asked = new Set();
function client(config) {
  const c = new MailtrapClient(config);
  const record = (req) => {
    const u = new URL(String(req.url));
    if (u.protocol === 'https:') asked.add(u.origin);
    return req;
  };
  c['axios'].interceptors.request.use(record);
  useTokend(c, base);
  c['axios'].interceptors.request.use(record);
  return c;
}

// caught runs fn, which must throw, and describes what it threw.
async function caught(fn) {
  try {
    const got = await fn();
    return { threw: false, result: got };
  } catch (e) {
    const res = e && e.cause && e.cause.response;
    return {
      threw: true,
      isMailtrapError: Boolean(e && e.constructor && e.constructor.name === 'MailtrapError'),
      message: String(e && e.message),
      status: res ? res.status : null,
      body: res ? res.data : null,
    };
  }
}

async function main() {
  const out = { sdkVersion };
  const attachment = Buffer.from('id,total\n1,42\n');
  out.attachmentSize = attachment.length;

  // (a) A transactional send with a test key: accepted as a live key's would
  // be, captured instead of delivered.
  const live = client({ token: testKey });
  out.send = await live.send({
    from: { email: `x@${domain}`, name: 'SDK Sender' },
    to: [{ email: 'to@example.org', name: 'To Person' }],
    cc: [{ email: 'cc@example.org' }],
    subject: 'SDK transactional',
    text: 'Plain text from the SDK.',
    html: '<p>HTML from the <b>SDK</b>.</p>',
    attachments: [{ filename: 'report.csv', content: attachment, type: 'text/csv', disposition: 'attachment' }],
    category: 'sdk-test',
    custom_variables: { user_id: '45982', batch_id: 'PSJ-12' },
    headers: { 'X-SDK-Test': 'transactional' },
  });

  // (b) A batch of two over a shared base; the second overrides the subject.
  out.batch = await live.batchSend({
    base: { from: { email: `x@${domain}` }, subject: 'SDK batch', text: 'Batch body.', category: 'sdk-batch' },
    requests: [
      { to: [{ email: 'b1@example.org' }] },
      { to: [{ email: 'b2@example.org' }], subject: 'SDK batch override', custom_variables: { n: '2' } },
    ],
  });

  // (c) Sandbox sends into the inbox: one send, one batch of one.
  const sandbox = client({ token: adminKey, sandbox: true, testInboxId: inboxId });
  const sandboxMail = {
    from: { email: 'qa@anywhere.test', name: 'QA Bot' },
    to: [{ email: 'mary@example.org', name: 'Mary' }],
    subject: 'SDK sandbox',
    text: 'Sandbox text body.',
    html: '<h1>Sandbox HTML body</h1>',
    attachments: [{ filename: 'notes.txt', content: attachment, type: 'text/plain' }],
    headers: { 'X-SDK-Test': 'sandbox' },
  };
  out.sandboxSend = await sandbox.send(sandboxMail);
  out.sandboxBatch = await sandbox.batchSend({
    base: { from: { email: 'qa@anywhere.test' }, text: 'Sandbox batch body.' },
    requests: [{ to: [{ email: 'john@example.org' }], subject: 'SDK sandbox batch' }],
  });

  // (d) Errors: a domain the account lacks, and a wrong token.
  out.errors = {};
  out.errors.foreignDomain = await caught(() => live.send({
    from: { email: 'x@not-ours.example' },
    to: [{ email: 'to@example.org' }],
    subject: 'never sent',
    text: 'never sent',
  }));
  const wrong = testKey.slice(0, -4) + (testKey.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  out.errors.wrongToken = await caught(() => client({ token: wrong }).send({
    from: { email: `x@${domain}` },
    to: [{ email: 'to@example.org' }],
    subject: 'never sent',
    text: 'never sent',
  }));
  out.errors.wrongTokenTesting = await caught(() => client({ token: wrong, accountId }).testing.messages.get(inboxId));

  // (e) The testing API reads the sandbox back.
  const reader = client({ token: adminKey, accountId });
  const messages = reader.testing.messages;
  out.list = await messages.get(inboxId);
  const captured = Array.isArray(out.list) ? out.list.find((m) => m.subject === sandboxMail.subject) : undefined;
  if (!captured) throw new Error(`the sandbox send is not in the list: ${JSON.stringify(out.list)}`);
  const id = captured.id;
  out.messageId = id;
  out.shown = await messages.showEmailMessage(inboxId, id);
  out.html = await messages.getHtmlMessage(inboxId, id);
  out.htmlSource = await messages.getMessageHtmlSource(inboxId, id);
  out.text = await messages.getTextMessage(inboxId, id);
  out.raw = await messages.getRawMessage(inboxId, id);
  out.eml = await messages.getMessageAsEml(inboxId, id);
  out.mailHeaders = await messages.getMailHeaders(inboxId, id);
  out.updated = await messages.updateMessage(inboxId, id, { isRead: true });
  out.shownAfterUpdate = await messages.showEmailMessage(inboxId, id);
  out.attachments = await reader.testing.attachments.getList(inboxId, id);
  if (Array.isArray(out.attachments) && out.attachments.length > 0) {
    out.attachment = await reader.testing.attachments.get(inboxId, id, out.attachments[0].id);
  }
  out.deleted = await messages.deleteMessage(inboxId, id);
  out.listAfterDelete = await messages.get(inboxId);
  out.errors.showDeleted = await caught(() => messages.showEmailMessage(inboxId, id));
  out.errors.missingHtml = await caught(async () => {
    const other = out.listAfterDelete.find((m) => m.subject === 'SDK sandbox batch');
    if (!other) throw new Error('no batch message left to read');
    return messages.getHtmlMessage(inboxId, other.id);
  });

  // (f) The account APIs of email sending: sending domains, webhooks,
  // suppressions and email logs, with the live admin key.
  const acct = client({ token: adminKey, accountId });
  out.domains = {};
  out.domains.list = await acct.sendingDomains.getList();
  const newDomain = await acct.sendingDomains.create({ domain_name: 'sdk2.example.com' });
  out.domains.created = newDomain;
  out.domains.got = await acct.sendingDomains.get(newDomain.id);
  out.domains.updated = await acct.sendingDomains.update(newDomain.id, { open_tracking_enabled: false, click_tracking_enabled: false });
  out.domains.trackingRefused = await caught(() => acct.sendingDomains.update(newDomain.id, { open_tracking_enabled: true }));
  out.domains.setup = await acct.sendingDomains.sendSetupInstructions(newDomain.id, 'dns@example.org');
  out.domains.deleted = await acct.sendingDomains.delete(newDomain.id);
  out.domains.gone = await caught(() => acct.sendingDomains.get(newDomain.id));

  out.webhooks = {};
  out.webhooks.created = await acct.webhooks.create({
    url: hookURL, webhook_type: 'email_sending', sending_stream: 'transactional',
    event_types: ['delivery', 'bounce'], payload_format: 'json', active: true,
  });
  const hookId = out.webhooks.created.data.id;
  out.webhooks.list = await acct.webhooks.getList();
  out.webhooks.got = await acct.webhooks.get(hookId);
  out.webhooks.updated = await acct.webhooks.update(hookId, { event_types: ['delivery', 'soft_bounce', 'bounce', 'reject'] });
  out.webhooks.invalid = await caught(() => acct.webhooks.create({ url: 'ftp://x.example.org/', webhook_type: 'email_sending', event_types: ['delivery'] }));
  const doomed = await acct.webhooks.create({ url: hookURL + '/doomed', webhook_type: 'email_sending', event_types: ['delivery'] });
  out.webhooks.deleted = await acct.webhooks.delete(doomed.data.id);

  out.suppressions = {};
  out.suppressions.created = await acct.suppressions.create({ email: 'Blocked@Example.org', domain_id: Number(process.env.TOKEND_DOMAIN_ID), sending_stream: 'transactional' });
  out.suppressions.list = await acct.suppressions.getList({ email: 'blocked@example.org' });
  out.suppressions.all = await acct.suppressions.getList();

  // A live send from the (trusted) domain: one recipient delivered, one
  // suppressed; the webhook gets the delivery.
  const sender = client({ token: adminKey });
  out.liveSend = await sender.send({
    from: { email: `news@${domain}` },
    to: [{ email: 'reader@example.org' }, { email: 'blocked@example.org' }],
    subject: 'SDK live', text: 'Live from the SDK.', category: 'sdk-live',
  });
  out.suppressions.deleted = await acct.suppressions.delete(out.suppressions.created.data.id);

  out.logs = {};
  out.logs.all = await acct.emailLogs.getList();
  out.logs.filtered = await acct.emailLogs.getList({ filters: { to: { operator: 'ci_equal', value: 'READER@example.org' }, sending_domain_id: { operator: 'equal', value: [Number(process.env.TOKEND_DOMAIN_ID)] } } });
  out.logs.suppressed = await acct.emailLogs.getList({ filters: { status: { operator: 'equal', value: 'opted_out' } } });
  out.logs.one = await acct.emailLogs.get(out.liveSend.message_ids[0]);
  out.logs.page = await acct.emailLogs.getList({ search_after: out.logs.all.messages[0].message_id });
  out.logs.badFilter = await caught(() => acct.emailLogs.getList({ filters: { status: { operator: 'equal', value: 'lost' } } }));

  out.asked = [...asked].sort();
  return out;
}

main().then(
  (out) => { process.stdout.write(JSON.stringify(out) + '\n'); },
  (e) => {
    const res = e && e.cause && e.cause.response;
    process.stderr.write(`run.js failed: ${e && e.stack ? e.stack : e}\n`);
    if (res) process.stderr.write(`HTTP ${res.status} ${res.config && res.config.method} ${res.config && res.config.url}: ${JSON.stringify(res.data)}\n`);
    process.exit(1);
  },
);
