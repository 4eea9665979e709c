import { parsePropertyArgument } from './usageEventAvro';

/** `tally send -p key=value`: the value sent is the one given, never a number changed on the way. */
describe('parsePropertyArgument', () => {
  it.each([
    ['tokens=150', 150],
    ['ratio=1.50', 1.5],
    ['delta=-3', -3],
    ['price=0.1', 0.1],
    ['tiny=0.0000001', 0.0000001],
    ['zero=0', 0],
    ['half=0.5', 0.5],
    ['big=9007199254740991', 9007199254740991],
    ['plan=pro', 'pro'],
    ['beta=true', true],
    ['x=null', null],
    ['note=', ''],
  ])('reads %s as before', (argument, value) => {
    expect(parsePropertyArgument(argument)[1]).toBe(value);
  });

  it.each([
    ['zip=01234', '01234'],
    ['code=-007', '-007'],
    ['lot=00.5', '00.5'],
  ])('sends a numeral with leading zeros (%s) as the string it is', (argument, value) => {
    expect(parsePropertyArgument(argument)).toEqual([argument.split('=')[0], value]);
  });

  it.each([
    ['zip="01234"', '01234'],
    ['tokens="150"', '150'],
    ['flag="true"', 'true'],
    ['x="null"', 'null'],
    ['q=""', ''],
    ['sentence="say "hi""', 'say "hi"'],
  ])('sends a value in double quotes (%s) as the string inside them', (argument, value) => {
    expect(parsePropertyArgument(argument)[1]).toBe(value);
  });

  it.each([['tokens=12345678901234567890'], ['big=9007199254740993'], ['pi=3.14159265358979323846']])(
    'refuses a numeral a number cannot hold exactly (%s), saying how to send it as a string',
    (argument) => {
      const [key, raw] = argument.split('=') as [string, string];
      expect(() => parsePropertyArgument(argument)).toThrow(
        `--property ${argument}: the number cannot be sent exactly (a usage event's numbers are doubles, exact to 15 significant digits); to send it as a string, quote it: ${key}="${raw}"`,
      );
    },
  );
});
