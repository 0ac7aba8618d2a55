"""Names of the raw listening-log columns that the format mappings produce (beyond schema.py)."""

from __future__ import annotations

from stages.schema import ARTIST_NAME, MS_PLAYED, PLAYED_AT, SKIPPED, TRACK_NAME, TRACK_URI, USER_ID

SOURCE_FILE = "source_file"
ALBUM_NAME = "album_name"
ARTIST_MBID = "artist_mbid"
TRACK_MBID = "track_mbid"
RAW_PLAY_COUNT = "play_count"
NON_MUSIC = "non_music"
INVALID_LINE = "invalid_line"
REQUIRED = (USER_ID, PLAYED_AT, ARTIST_NAME, TRACK_NAME)
OPTIONAL = (MS_PLAYED, SKIPPED, TRACK_URI, ALBUM_NAME, ARTIST_MBID, TRACK_MBID, RAW_PLAY_COUNT)
UNKNOWN_ARTIST = "[unknown artist]"
