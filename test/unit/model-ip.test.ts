// Address parsing without node:net: strict forms, canonical IPv6 text, IPv4-mapped folding, CIDR.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  canonicalIp,
  checkIpBlock,
  hostPort,
  ipBlockContains,
  ipKey,
  parseIp,
  parseIpBlock,
} from '../../daemon/model/index.js';

test('parsing is strict and the canonical form follows RFC 5952', () => {
  for (const bad of [
    '',
    '1.2.3',
    '1.2.3.4.5',
    '01.2.3.4',
    '256.1.1.1',
    '1.2.3.4/8',
    'fe80::1%eth0',
    '1::2::3',
    ':::',
    '12345::',
    'g::1',
    '1:2:3:4:5:6:7:8:9',
    '[::1]',
  ]) {
    assert.equal(parseIp(bad), undefined, bad);
  }
  const cases: [string, string][] = [
    ['10.0.0.1', '10.0.0.1'],
    ['FD00:0000:0000:0000:0000:0000:0000:0001', 'fd00::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['::ffff:10.1.2.3', '::ffff:10.1.2.3'],
    ['::ffff:a01:203', '::ffff:10.1.2.3'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
  ];
  for (const [input, canonical] of cases) assert.equal(canonicalIp(input), canonical, input);
});

test('index keys fold IPv4-mapped IPv6 to IPv4; host:port brackets IPv6', () => {
  assert.equal(ipKey('::ffff:10.1.2.3'), '10.1.2.3');
  assert.equal(ipKey('FD00::0:1'), 'fd00::1');
  assert.equal(ipKey('nope'), undefined);
  assert.equal(hostPort('10.0.0.1', 80), '10.0.0.1:80');
  assert.equal(hostPort('fd00::1', 80), '[fd00::1]:80');
});

test('CIDR blocks: parse, check and contain', () => {
  const block = (t: string) => parseIpBlock(t)!;
  const ip = (t: string) => parseIp(t)!;
  assert.equal(ipBlockContains(block('10.0.0.0/8'), ip('10.255.1.1')), true);
  assert.equal(ipBlockContains(block('10.0.0.0/8'), ip('11.0.0.1')), false);
  assert.equal(ipBlockContains(block('10.1.2.0/23'), ip('10.1.3.200')), true);
  assert.equal(ipBlockContains(block('10.1.2.0/23'), ip('10.1.4.0')), false);
  assert.equal(ipBlockContains(block('0.0.0.0/0'), ip('1.2.3.4')), true);
  assert.equal(ipBlockContains(block('10.0.0.0/8'), ip('::ffff:10.0.0.1')), true);
  assert.equal(ipBlockContains(block('10.0.0.0/8'), ip('fd00::1')), false);
  assert.equal(ipBlockContains(block('fd00::/8'), ip('fd12::1')), true);
  assert.equal(ipBlockContains(block('192.168.1.1'), ip('192.168.1.1')), true);
  assert.equal(ipBlockContains(block('192.168.1.1'), ip('192.168.1.2')), false);
  assert.equal(checkIpBlock('10.0.0.0/8'), undefined);
  assert.equal(checkIpBlock('10.0.0.0/08'), '"10.0.0.0/08": the prefix length must be 0..32');
  assert.equal(parseIpBlock('10.0.0.0/'), undefined);
});
