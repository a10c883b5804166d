import { Metadata, status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { CliError } from '../output';
import { notFoundById } from './delete';

// C1 never sees a record ID, so its NOT_FOUND names a place in the request; the CLI names the ID.

const notFound = (details: string) => Object.assign(new Error(details), { code: status.NOT_FOUND, details, metadata: new Metadata() });

describe("delete's NOT_FOUND", () => {
  it('names the ID at the place C1 reports, counting an ID named twice once', () => {
    const error = notFoundById(notFound('record 2 of 2 is not in the collection'), ['a.png', 'a.png', 'b.png']) as CliError;
    expect(error.kind).toBe('notFound');
    expect(error.message).toBe(
      '"b.png" is not in the collection, so nothing was deleted (NOT_FOUND). Record IDs are the uploaded file names',
    );
  });

  it('says "one of the IDs" when the count does not match what was sent', () => {
    expect((notFoundById(notFound('record 1 of 5 is not in the collection'), ['a.png']) as CliError).message).toMatch(
      /^one of the IDs is not/,
    );
  });

  it('leaves any other failure as it is', () => {
    const other = new Error('disk');
    expect(notFoundById(other, ['a.png'])).toBe(other);
  });
});
