import { expect } from 'chai';
import fc from 'fast-check';
import { buildRoomName, isSessionRoom, newRoomSuffix, parseRoomName, reservedRoomMetadata, roomMadeFor, roomMetadataFor } from '../../common/rooms.js';

const idChar = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-'.split(''));
const agentId = fc.string({ unit: idChar, minLength: 1, maxLength: 64 });
const suffix = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789'.split('')), minLength: 16, maxLength: 16 });

describe('room names', () => {
  it('keeps the original pattern agent-{id}-room', () => {
    expect(buildRoomName('1')).to.equal('agent-1-room');
    expect(parseRoomName('agent-123-room')).to.deep.equal({ agentId: '123' });
  });

  it('round-trips every id of the allowed alphabet, with and without a session suffix', () => {
    fc.assert(
      fc.property(agentId, fc.option(suffix, { nil: undefined }), (id, sfx) => {
        const parsed = parseRoomName(buildRoomName(id, sfx));
        expect(parsed).to.deep.equal(sfx === undefined ? { agentId: id } : { agentId: id, suffix: sfx });
      }),
      { numRuns: 5000 },
    );
  });

  it('never maps two different (id, suffix) pairs to one name, even for ids that contain -room', () => {
    fc.assert(
      fc.property(agentId, agentId, fc.option(suffix, { nil: undefined }), fc.option(suffix, { nil: undefined }), (a, b, sa, sb) => {
        fc.pre(a !== b || sa !== sb);
        expect(buildRoomName(a, sa)).not.to.equal(buildRoomName(b, sb));
      }),
      { numRuns: 5000 },
    );
    expect(parseRoomName(buildRoomName('x-room', 'abcdefghij012345'))).to.deep.equal({ agentId: 'x-room', suffix: 'abcdefghij012345' });
    expect(parseRoomName(buildRoomName('x-room-abcdefghij012345'))).to.deep.equal({ agentId: 'x-room-abcdefghij012345' });
  });

  it('rejects names of other shapes and ids outside the alphabet', () => {
    for (const bad of ['agent--room', 'agent-a b-room', 'room-1', 'agent-1-room-SHORT', 'agent-1-room-', `agent-${'a'.repeat(65)}-room`]) {
      expect(parseRoomName(bad), bad).to.equal(undefined);
    }
    expect(() => buildRoomName('a/b')).to.throw(RangeError);
    expect(newRoomSuffix()).to.match(/^[a-z0-9]{16}$/);
  });

  it('tells this API\'s rooms (made with a session\'s dispatch, or reserved by its token) from any other, and which session made one', () => {
    const made = roomMetadataFor('ses_a');
    const reserved = reservedRoomMetadata('ses_a');
    expect(roomMadeFor(made, 'ses_a')).to.equal(true);
    expect(roomMadeFor(made, 'ses_b')).to.equal(false);
    // Reserved is not made: the dispatcher still adds the session's dispatch to such a room.
    expect(roomMadeFor(reserved, 'ses_a')).to.equal(false);
    for (const m of [made, reserved]) expect(isSessionRoom(m), m).to.equal(true);
    for (const m of ['', undefined, 'not json', '{"agentRuntime":null}', '{"agentRuntime":"x"}', '{"other":{}}', '[1]']) expect(isSessionRoom(m), String(m)).to.equal(false);
  });
});
