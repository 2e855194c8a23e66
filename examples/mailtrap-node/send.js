'use strict';
// Sends one email with Mailtrap's official Node SDK: through tokend when
// TOKEND_URL is set, through Mailtrap otherwise. Prints the SDK's answer.
//
//   npm install
//   TOKEND_URL=http://127.0.0.1:8080 MAILTRAP_TOKEN=tk_test_... \
//     MAIL_FROM=hello@example.com MAIL_TO=you@example.org node send.js

const { MailtrapClient } = require('mailtrap');
const { useTokend } = require('./tokend');

const client = new MailtrapClient({ token: process.env.MAILTRAP_TOKEN });
if (process.env.TOKEND_URL) {
  useTokend(client, process.env.TOKEND_URL);
}

client
  .send({
    from: { email: process.env.MAIL_FROM, name: 'tokend example' },
    to: [{ email: process.env.MAIL_TO }],
    subject: 'Hello from tokend',
    text: 'Sent with the Mailtrap Node SDK, through tokend.',
  })
  .then((answer) => console.log(JSON.stringify(answer)))
  .catch((err) => {
    console.error(err.message);
    process.exit(1);
  });
