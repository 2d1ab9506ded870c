// Browser test of the DNS status page (`meridian dns --admin`), in headless Chromium driven by
// playwright-core. Run through run.sh, which installs what it needs.
//
// It starts three loopback health endpoints (site reports with some load), writes the example
// zone with its checks pointed at them, starts `meridian dns` on loopback, sends it a few ECS
// queries, then in the browser: the map shows three datacenter markers and the table three
// rows, all green; draining eu-west through the admin API turns its marker and row amber
// without reloading the page (the page refreshes itself); the explain form shows the trace for
// a GB client, now sent to us-east. It saves a screenshot under target/browser/.
//
// Every wait is bounded; every server listens on 127.0.0.1 only.

import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { binary, check, finish, freePort, launch, outDir, root, until } from './lib.mjs';

const token = 'browser-test-token';

/** A site's /health endpoint answering a site report with `load`. */
function healthSite(load) {
  return new Promise((resolve) => {
    const body = JSON.stringify({ status: 'up', healthy_backends: 3, total_backends: 3, load });
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    });
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

/** An A query for `name` with EDNS Client Subnet `a.b.c.0/24`. */
function ecsQuery(name, subnet) {
  const id = Math.floor(Math.random() * 65536);
  const header = Buffer.from([id >> 8, id & 255, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
  const labels = name.split('.').filter(Boolean).map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const question = Buffer.concat([...labels, Buffer.from([0, 0, 1, 0, 1])]);
  const addr = subnet.split('.').slice(0, 3).map(Number);
  const option = Buffer.from([0, 8, 0, 7, 0, 1, 24, 0, ...addr]);
  const opt = Buffer.concat([Buffer.from([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, option.length]), option]);
  return Buffer.concat([header, question, opt]);
}

function ask(port, name, subnet) {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    const timer = setTimeout(() => { sock.close(); reject(new Error('no DNS reply')); }, 5000);
    sock.on('message', (msg) => { clearTimeout(timer); sock.close(); resolve(msg); });
    sock.send(ecsQuery(name, subnet), port, '127.0.0.1');
  });
}

async function main() {
  fs.mkdirSync(outDir, { recursive: true });
  const sites = [await healthSite(0.35), await healthSite(0.6), await healthSite(0.2)];
  let zone = fs.readFileSync(path.join(root, 'zones/example.com.toml'), 'utf8');
  zone = zone.replace('"../geoip/demo.mmdb"', JSON.stringify(path.join(root, 'geoip/demo.mmdb')));
  ['127.0.1.1', '127.0.2.1', '127.0.3.1'].forEach((region, i) => {
    zone = zone.replace(`http://${region}:9101/health`, `http://127.0.0.1:${sites[i].address().port}/health`);
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meridian-browser-'));
  fs.writeFileSync(path.join(dir, 'example.com.toml'), zone);

  const dnsPort = await freePort();
  const adminPort = await freePort();
  const admin = `http://127.0.0.1:${adminPort}`;
  const dns = spawn(binary, ['dns', '--zones', dir, '--listen', `127.0.0.1:${dnsPort}`,
    '--admin', `127.0.0.1:${adminPort}`, '--workers', '1'], {
    env: { ...process.env, MERIDIAN_ADMIN_TOKEN: token, RUST_LOG: 'warn' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise((resolve) => dns.on('exit', resolve));
  let browser;
  try {
    await until('the admin listener', async () => (await fetch(`${admin}/health`)).ok);
    for (const [subnet, n] of [['81.2.69.0', 6], ['216.160.83.0', 3], ['202.12.27.0', 2]]) {
      for (let i = 0; i < n; i++) await ask(dnsPort, 'www.example.com', subnet);
    }

    browser = await launch();
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const external = [];
    page.on('request', (r) => { if (!r.url().startsWith(admin)) external.push(r.url()); });
    await page.goto(`${admin}/status`);

    const markers = page.locator('#map .dc-marker');
    const rows = page.locator('#dcs tbody tr');
    check('the map shows three datacenter markers', (await markers.count()) === 3, `${await markers.count()}`);
    check('the table has three rows', (await rows.count()) === 3, `${await rows.count()}`);
    const colours = await markers.evaluateAll((ms) => ms.map((m) => m.dataset.colour));
    check('every datacenter starts green', colours.every((c) => c === 'green'), colours.join(','));
    const names = await markers.evaluateAll((ms) => ms.map((m) => m.dataset.dc).sort());
    check('markers name the three regions', names.join(',') === 'ap-northeast,eu-west,us-east', names.join(','));
    const eu = page.locator('#map .dc-marker[data-dc="eu-west"]');
    const box = await eu.locator('circle').boundingBox();
    const mapBox = await page.locator('#map').boundingBox();
    // Dublin (-6.26 E) lies just left of the middle of a -180..180 map.
    const rel = (box.x + box.width / 2 - mapBox.x) / mapBox.width;
    check('eu-west is drawn at its longitude', Math.abs(rel - (180 - 6.26) / 360) < 0.02, `${rel}`);

    const drained = await fetch(`${admin}/api/datacenters/example.com./eu-west`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify({ state: 'draining' }),
    });
    check('the admin API drains eu-west', drained.status === 200, `${drained.status}`);
    // No reload: the page's own refresh must bring the change.
    await until('eu-west to turn amber', async () =>
      (await page.locator('#map .dc-marker[data-dc="eu-west"]').getAttribute('data-colour')) === 'amber');
    const fill = await page.locator('#map .dc-marker[data-dc="eu-west"] circle').evaluate((c) => getComputedStyle(c).fill);
    check('drained eu-west is drawn amber, not green', fill === 'rgb(232, 163, 23)', fill);
    const rowColour = await page.locator('#dcs tr[data-dc="eu-west"]').getAttribute('data-colour');
    check('its table row turns amber', rowColour === 'amber', rowColour);
    const state = await page.locator('#dcs tr[data-dc="eu-west"] td.state').innerText();
    check('its state reads draining (admin)', state.startsWith('draining (admin)'), state);

    await page.fill('input[name=client]', '81.2.69.0/24');
    await page.click('#explain button');
    await page.waitForSelector('#answer', { timeout: 10000 });
    const answer = await page.locator('#answer').innerText();
    check('explain sends a GB client to us-east while eu-west drains', answer.includes('us-east'), answer);
    const steps = await page.locator('#steps tbody tr').count();
    check('explain shows the steps', steps >= 5, `${steps}`);
    check('the page loads nothing from elsewhere', external.length === 0, external.join(' '));

    await page.evaluate(() => document.getElementById('explain').scrollIntoView({ block: 'end' }));
    await page.evaluate(() => window.scrollTo(0, 0));
    const shot = path.join(outDir, 'dns-status.png');
    await page.screenshot({ path: shot, fullPage: true });
    check(`screenshot saved to ${path.relative(root, shot)}`, fs.statSync(shot).size > 10000);
  } catch (e) {
    check('no error', false, e.stack || String(e));
  } finally {
    if (browser) await browser.close();
    dns.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 10000))]);
    check('meridian dns exits cleanly on SIGTERM', code === 0, `${code}`);
    sites.forEach((s) => s.close());
    fs.rmSync(dir, { recursive: true, force: true });
  }
  finish();
}

main();
