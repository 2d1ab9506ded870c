// Browser test of both status pages against a running `meridian demo`, in headless Chromium
// driven by playwright-core. Run through run.sh, which installs what it needs.
//
// It starts the demo (DNS server, three site balancers and their backends, all on loopback),
// then in the browser: the DNS page's map and table show the three regions, all green; the
// eu-west site's page shows its pool and both servers green with a green site badge. Draining
// eu-west at its own balancer (the site's runtime API, as the guide says) turns its site page
// amber and, once the DNS prober has read the site's report, its marker and row on the DNS
// page too, without reloading either page. It saves a screenshot of each page under
// target/browser/.
//
// The demo's sites listen on fixed loopback addresses (127.0.X.1:9101 and friends); the DNS
// server and its admin listener on free ports. Every wait is bounded.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { binary, check, finish, freePort, launch, outDir, root, until } from './lib.mjs';

const token = 'demo'; // the demo's throwaway admin token (src/app/demo.rs)
const euSite = 'http://127.0.1.1:9101';

async function main() {
  fs.mkdirSync(outDir, { recursive: true });
  const dnsPort = await freePort();
  const adminPort = await freePort();
  const admin = `http://127.0.0.1:${adminPort}`;
  const demo = spawn(binary, ['demo', '--dns', `127.0.0.1:${dnsPort}`, '--admin', `127.0.0.1:${adminPort}`], {
    cwd: root,
    env: { ...process.env, RUST_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let printed = '';
  const guide = new Promise((resolve) => {
    demo.stdout.on('data', (d) => {
      printed += d;
      if (printed.includes('Ctrl-C stops everything')) resolve(true);
    });
  });
  const exited = new Promise((resolve) => demo.on('exit', resolve));
  let browser;
  try {
    await Promise.race([guide, new Promise((_, rej) => setTimeout(() => rej(new Error('the demo printed no guide in 60 s')), 60000))]);
    check('the demo prints where the status pages are', printed.includes(`${euSite.slice(7)}/status`), printed);

    browser = await launch();
    const external = [];
    const dnsPage = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const sitePage = await browser.newPage({ viewport: { width: 1400, height: 700 } });
    for (const [p, base] of [[dnsPage, admin], [sitePage, euSite]]) {
      p.on('request', (r) => { if (!r.url().startsWith(base)) external.push(r.url()); });
    }

    await dnsPage.goto(`${admin}/status`);
    const markers = dnsPage.locator('#map .dc-marker');
    check('the DNS map shows three datacenters', (await markers.count()) === 3, `${await markers.count()}`);
    const names = await markers.evaluateAll((ms) => ms.map((m) => m.dataset.dc).sort());
    check('they are the three regions', names.join(',') === 'ap-northeast,eu-west,us-east', names.join(','));
    check('the DNS table has three rows', (await dnsPage.locator('#dcs tbody tr').count()) === 3);
    await until('every datacenter green on the DNS page', async () => {
      const c = await markers.evaluateAll((ms) => ms.map((m) => m.dataset.colour));
      return c.every((x) => x === 'green');
    }, 15000);
    check('every datacenter starts green', true);

    // Some traffic through the eu-west site, so its table has figures.
    for (let i = 0; i < 10; i++) {
      const r = await fetch('http://127.0.1.10:8080/');
      await r.text();
    }
    await sitePage.goto(`${euSite}/status`);
    const requests = await sitePage.locator('table.pool[data-pool="web"] tbody tr td:nth-child(10)').allInnerTexts();
    check('the site table counts the requests sent through it', requests.reduce((a, b) => a + Number(b), 0) === 10, requests.join(','));
    const badge = sitePage.locator('#site-state');
    check('the site page says the site is up', (await badge.getAttribute('data-state')) === 'up');
    const servers = sitePage.locator('table.pool[data-pool="web"] tbody tr');
    check('the site table lists the pool\'s two servers', (await servers.count()) === 2, `${await servers.count()}`);
    const rowClasses = await servers.evaluateAll((rs) => rs.map((r) => r.className));
    check('both servers are green', rowClasses.every((c) => c === 'green'), rowClasses.join(','));
    const headers = await sitePage.locator('table.pool thead th').allInnerTexts();
    for (const h of ['state', 'weight', 'active', 'requests', 'errors', 'latency ms', 'breaker']) {
      check(`the site table has a "${h}" column`, headers.includes(h), headers.join('|'));
    }
    check('the site page has its recommendations', (await sitePage.locator('#advice, #advice-none').count()) === 1);

    const drained = await fetch(`${euSite}/api/site`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ state: 'draining' }),
    });
    check('the eu-west site API drains the site', drained.status === 200, `${drained.status}`);
    // Neither page is reloaded: their own refresh must bring the change.
    await until('the site badge to turn amber', async () => (await badge.getAttribute('data-state')) === 'draining', 15000);
    const badgeColour = await badge.evaluate((b) => getComputedStyle(b).backgroundColor);
    check('the drained site is drawn amber, not green', badgeColour !== 'rgb(46, 158, 68)', badgeColour);
    await until('eu-west to leave green on the DNS page', async () =>
      (await dnsPage.locator('#map .dc-marker[data-dc="eu-west"]').getAttribute('data-colour')) !== 'green', 15000);
    const colour = await dnsPage.locator('#map .dc-marker[data-dc="eu-west"]').getAttribute('data-colour');
    check('the DNS map shows drained eu-west non-green', colour !== 'green', colour);
    const rowColour = await dnsPage.locator('#dcs tr[data-dc="eu-west"]').getAttribute('data-colour');
    check('its DNS table row is non-green', rowColour !== 'green', rowColour);
    const others = await dnsPage.locator('#map .dc-marker:not([data-dc="eu-west"])')
      .evaluateAll((ms) => ms.map((m) => m.dataset.colour));
    check('the other two stay green', others.every((c) => c === 'green'), others.join(','));
    check('neither page loads anything from elsewhere', external.length === 0, external.join(' '));

    for (const [p, file] of [[dnsPage, 'demo-dns-status.png'], [sitePage, 'demo-site-status.png']]) {
      const shot = path.join(outDir, file);
      await p.screenshot({ path: shot, fullPage: true });
      check(`screenshot saved to ${path.relative(root, shot)}`, fs.statSync(shot).size > 10000);
    }

    await fetch(`${euSite}/api/site`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify({ state: 'ready' }),
    });
  } catch (e) {
    check('no error', false, e.stack || String(e));
  } finally {
    if (browser) await browser.close();
    demo.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 15000))]);
    check('the demo stops cleanly on SIGTERM', code === 0, `${code}`);
  }
  finish();
}

main();
