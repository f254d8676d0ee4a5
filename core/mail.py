"""An e-mail backend for a shop on one machine (make run): each message in a file of its own under
EMAIL_FILE_PATH (`<when>-<random>.eml`, which a mail program opens), where Django's file backend
writes every message of a connection into one file."""

import uuid

from django.core.mail.backends.filebased import EmailBackend
from django.utils import timezone


class OneFilePerMessageBackend(EmailBackend):
    def send_messages(self, email_messages) -> int:
        # The base class opens a file when it has none and closes it after: one file per call.
        return sum(super(OneFilePerMessageBackend, self).send_messages([message]) for message in email_messages)

    def write_message(self, message) -> None:
        self.stream.write(message.message().as_bytes())

    def _get_filename(self) -> str:
        self._fname = f"{self.file_path}/{timezone.now():%Y%m%d-%H%M%S-%f}-{uuid.uuid4().hex[:8]}.eml"
        return self._fname
