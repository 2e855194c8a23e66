'use strict';
// useTokend points a client of Mailtrap's official Node SDK (the npm package
// "mailtrap") at tokend. The SDK has no base URL option: each call asks for
// an absolute URL on one of Mailtrap's hosts (send.api.mailtrap.io,
// bulk.api.mailtrap.io, sandbox.api.mailtrap.io, mailtrap.io). useTokend adds
// a request interceptor to the client's axios instance that sends each of
// them to tokend instead, with the same method, path, query, headers and
// body. A request for any other URL fails rather than leave for elsewhere.
//
//   const { MailtrapClient } = require('mailtrap');
//   const { useTokend } = require('./tokend');
//   const client = useTokend(new MailtrapClient({ token }), 'http://127.0.0.1:8080');
//
// baseURL is tokend's address, with a path prefix if a proxy serves it under
// one. The client's axios instance is private in the SDK's TypeScript types;
// client['axios'] reaches it from TypeScript too. Tested with mailtrap 4.10.0
// by tokend's e2e tests (e2e/sdk_test.go).

const MAILTRAP_API = /^https:\/\/(?:(?:send|bulk|sandbox)\.api\.)?mailtrap\.io(?=\/|$)/;

function useTokend(client, baseURL) {
  const base = new URL(baseURL).href.replace(/\/+$/, '');
  const axios = client['axios'];
  if (!axios || !axios.interceptors) {
    throw new Error('useTokend: this MailtrapClient has no axios instance; is it the mailtrap package this was tested with (4.10.0)?');
  }
  axios.interceptors.request.use((config) => {
    const url = String(config.url);
    if (!MAILTRAP_API.test(url)) {
      throw new Error(`useTokend: ${url} is not on one of Mailtrap's API hosts`);
    }
    config.url = base + url.replace(MAILTRAP_API, '');
    return config;
  });
  return client;
}

module.exports = { useTokend };
