import { randomBytes } from 'node:crypto';
import type { ImageStack } from '@fnn/shared';
import { CliError } from '../output';

// Files the doctor dropped into the page, held while a slice is picked and
// searched: bounded in number and in bytes (a NIfTI volume can be large), the
// oldest forgotten first. Only in this process's memory; never written to disk.

export interface HeldFile {
  id: string;
  name: string;
  stack: ImageStack;
  bytes: number;
}

export class HeldFiles {
  private readonly files = new Map<string, HeldFile>();

  constructor(
    private readonly maxFiles = 64,
    private readonly maxBytes = 1024 * 1024 * 1024,
  ) {}

  add(name: string, stack: ImageStack, bytes: number): HeldFile {
    const file = { id: randomBytes(12).toString('hex'), name, stack, bytes };
    this.files.set(file.id, file);
    let total = [...this.files.values()].reduce((sum, f) => sum + f.bytes, 0);
    for (const [id, f] of this.files) {
      if (this.files.size <= this.maxFiles && total <= this.maxBytes) break;
      if (id === file.id) continue;
      this.files.delete(id);
      total -= f.bytes;
    }
    return file;
  }

  get(id: string): HeldFile {
    const file = this.files.get(id);
    if (!file) throw new CliError('notFound', 'that file is no longer held by the viewer (too many were opened since): drop it again');
    return file;
  }
}
