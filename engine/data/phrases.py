"""The phrase bank of the caption writer: verbs, synonyms, sentence frames, connectives, timing
and speed words, and the action label -> high-level phrase table.

Verb phrases are written in the base form with the verb first ("curl {fingers} into the palm");
``engine.data.captions`` conjugates them (3rd person singular, plural, -ing). Placeholders:
``{fingers}`` a finger noun phrase with its owner ("its index finger"), ``{pair}`` a fingertip
pair, ``{other}`` the other hand ("the right hand"), ``{hand}`` the acting hand. Every entry
says only what its event says; adding synonyms is safe, adding claims is not.
"""
from __future__ import annotations

# --- speed and timing --------------------------------------------------------------------------

# single words may go before the verb or at the end; multi-word phrases only at the end
SPEED_ADVERBS = {
    "fast": ["quickly", "rapidly", "swiftly", "briskly", "sharply", "fast", "in a quick motion",
             "in one quick movement", "at a brisk pace", "with a quick motion"],
    "moderate": ["steadily", "smoothly", "evenly", "at a steady pace", "at a moderate pace",
                 "at an even pace", "in a smooth motion", "without hurry"],
    "slow": ["slowly", "gently", "gradually", "leisurely", "unhurriedly", "at a slow pace",
             "in a slow, controlled motion", "little by little"],
}

# where in the clip an event starts, as a share of its duration
TIME_BUCKETS = (
    (0.12, ["at the start", "right away", "immediately", "at the very beginning", "first thing",
            "as the clip begins", "from the outset"]),
    (0.38, ["early on", "shortly after the start", "in the first part of the clip", "soon after it begins",
            "early in the motion"]),
    (0.62, ["midway through", "halfway through", "around the middle", "in the middle of the clip",
            "about halfway in"]),
    (0.85, ["later on", "in the second half", "later in the clip", "past the midpoint", "further on"]),
    (1.01, ["toward the end", "near the end", "at the end", "in the last moments", "just before the end",
            "as the clip closes"]),
)

# explicit spans (level 5); {a}, {b} are seconds, {d} a duration
SPAN_FRAMES = ["from {a} s to {b} s", "between {a} s and {b} s", "starting at {a} s and ending at {b} s",
               "from {a} to {b} seconds", "over {a}-{b} s"]
AT_FRAMES = ["at {a} s", "at about {a} s", "around {a} s", "at the {a} s mark"]
DURATION_FRAMES = ["over {d} s", "in {d} s", "within {d} seconds", "over about {d} seconds"]
HOLD_FROM = ["from {a} s", "from about {a} s", "from the {a} s mark", "starting at {a} s"]
UNTIL_END = ["until the end", "for the rest of the clip", "through to the end", "to the end of the clip"]
THROUGHOUT = ["throughout", "the whole time", "for the entire clip", "from start to finish", "all along",
              "throughout the motion"]

# --- connectives -------------------------------------------------------------------------------

THEN = [", then", " and then", ", and after that", ", and next", ", and afterwards", ", and subsequently",
        ", and following this"]
THEN_SENTENCE = ["Then", "After that", "Next", "Afterwards", "Following this", "Once that is done",
                 "Subsequently", "Later"]
FINALLY_SENTENCE = ["Finally", "Lastly", "In the end", "To finish", "At last"]
WHILE = ["while", "as", "all while", "even as"]
MEANWHILE_SENTENCE = ["Meanwhile", "At the same time", "Simultaneously", "In the meantime", "Concurrently"]
ALSO_SENTENCE = ["In addition", "Also", "Besides this", "On top of that"]

# --- subjects ----------------------------------------------------------------------------------

HAND_SUBJECTS = {
    "left": ["The left hand", "The left hand", "The person's left hand", "Their left hand", "The left"],
    "right": ["The right hand", "The right hand", "The person's right hand", "Their right hand", "The right"],
}
HAND_PRONOUNS = ["It", "The hand", "This hand"]
BOTH_SUBJECTS = ["Both hands", "The two hands", "Both of the hands", "The hands"]
PERSON_SUBJECTS = ["A person", "The person", "Someone", "The performer", "A performer"]

# --- fingers -----------------------------------------------------------------------------------

FINGER_NOUNS = {
    "thumb": ["thumb"],
    "index": ["index finger", "index finger", "forefinger"],
    "middle": ["middle finger"],
    "ring": ["ring finger"],
    "pinky": ["pinky", "little finger", "pinky finger"],
}
FINGER_ADJ = {"thumb": "thumb", "index": "index", "middle": "middle", "ring": "ring", "pinky": "pinky"}
ALL_FIVE = ["all five fingers", "every finger", "all {owner} fingers", "the whole hand's fingers",
            "all five of {owner} fingers"]
FOUR = ["{owner} four fingers", "all four fingers", "{owner} fingers", "the four fingers"]

# --- finger flexion ----------------------------------------------------------------------------

# keyed by (from, to) with "bent" standing for partially_bent or fully_bent where both fit
FLEX_VPS = {
    ("extended", "fully_bent"): ["curl {fingers} fully", "bend {fingers} all the way", "fold {fingers} into the palm",
                                 "flex {fingers} tightly", "curl {fingers} into the palm", "close {fingers} completely",
                                 "bend {fingers} closed"],
    ("extended", "partially_bent"): ["bend {fingers} partway", "half-bend {fingers}", "curl {fingers} slightly",
                                     "flex {fingers} halfway", "bend {fingers} somewhat", "curl {fingers} partway"],
    ("partially_bent", "fully_bent"): ["curl {fingers} the rest of the way", "close {fingers} further",
                                       "bend {fingers} fully", "tighten {fingers} into a full curl",
                                       "flex {fingers} completely"],
    ("fully_bent", "partially_bent"): ["loosen {fingers}", "uncurl {fingers} partway", "relax {fingers} halfway",
                                       "ease {fingers} open a little", "let {fingers} open partway"],
    ("fully_bent", "extended"): ["straighten {fingers}", "extend {fingers} fully", "uncurl {fingers}",
                                 "open {fingers} out straight", "stretch {fingers} out", "release {fingers} straight"],
    ("partially_bent", "extended"): ["straighten {fingers}", "extend {fingers}", "open {fingers} out",
                                     "unbend {fingers}", "stretch {fingers} straight"],
    ("extended", "hyperextended"): ["bend {fingers} backward", "hyperextend {fingers}", "push {fingers} back past straight",
                                    "arch {fingers} backward"],
    ("hyperextended", "extended"): ["bring {fingers} back to straight", "relax {fingers} from the backward bend",
                                    "return {fingers} to a straight line"],
    ("bent", "hyperextended"): ["open {fingers} and bend them backward", "straighten {fingers} past flat"],
    ("hyperextended", "bent"): ["curl {fingers} from a backward bend", "bend {fingers} forward again"],
}
FLEX_HOLD_VPS = {
    "fully_bent": ["keep {fingers} curled", "hold {fingers} tightly bent", "keep {fingers} folded"],
    "partially_bent": ["keep {fingers} half bent", "hold {fingers} partly curled", "keep {fingers} loosely bent"],
    "extended": ["keep {fingers} straight", "hold {fingers} extended", "keep {fingers} out straight"],
    "hyperextended": ["keep {fingers} bent backward", "hold {fingers} hyperextended"],
}

# whole-hand shapes reached by a change (checked against every finger's state)
SHAPE_VPS = {
    "fist": ["close into a fist", "make a fist", "clench into a fist", "curl up into a fist", "form a tight fist",
             "ball up into a fist", "squeeze into a fist"],
    "open": ["open flat", "open fully", "open up with every finger straight", "flatten out",
             "spread open with straight fingers", "open into a flat hand"],
    "point": ["point with the index finger", "form a pointing shape", "extend the index finger to point",
              "make a pointing gesture with the index finger"],
    "two": ["raise the index and middle fingers with the others curled", "hold up two fingers",
            "extend the index and middle fingers, keeping the rest curled"],
}
SHAPE_FROM_VPS = {  # leaving a shape
    "fist": ["open out of the fist", "release the fist", "unclench the fist", "let go of the fist"],
}
SHAPE_HOLD_VPS = {
    "fist": ["hold the fist", "stay clenched in a fist", "keep the fist closed"],
    "open": ["stay open", "stay flat and open", "remain open", "hold its fingers straight"],
    "point": ["keep pointing", "hold the pointing shape"],
    "two": ["keep two fingers up"],
}
SHAPE_PLURAL = {"fist": "fists", "open": "open hands", "point": "pointing shapes", "two": "two-finger shapes"}

# --- finger spacing ----------------------------------------------------------------------------

SPREAD_VPS = ["spread {pairs} apart", "fan out {pairs}", "open a gap between {pairs}", "splay {pairs} apart",
              "move {pairs} apart"]
CLOSE_VPS = ["bring {pairs} together", "close the gap between {pairs}", "draw {pairs} together",
             "narrow the gap between {pairs}", "close {pairs} together"]
SPREAD_ALL_VPS = ["spread the fingers wide", "fan the fingers out", "splay the fingers apart", "spread its fingers"]
CLOSE_ALL_VPS = ["bring the fingers together", "close the fingers side by side", "draw the fingers together"]

# --- fingertip contact within a hand -----------------------------------------------------------

PINCH_VPS = ["touch {thumb} to {tip}", "bring {thumb} and {tip} together", "pinch {thumb} against {tip}",
             "press {thumb} onto {tip}", "make {thumb} meet {tip}", "join {thumb} and {tip}"]
RELEASE_VPS = ["release the pinch", "separate {thumb} from {tip}", "pull {thumb} away from {tip}",
               "let {thumb} and {tip} part", "open the pinch"]
PINCH_HOLD_VPS = ["keep {thumb} and {tip} touching", "hold the pinch", "keep {thumb} pressed to {tip}"]

# --- wrist motion ------------------------------------------------------------------------------

MOVE_VPS = {
    "right": ["move to the right", "shift to the right", "slide rightward", "travel to the right",
              "drift to the right", "move rightward"],
    "left": ["move to the left", "shift to the left", "slide leftward", "travel to the left",
             "drift to the left", "move leftward"],
    "up": ["rise", "move up", "lift upward", "raise up", "travel upward", "go up"],
    "down": ["lower", "move down", "drop down", "sink downward", "descend", "come down"],
    "forward": ["move forward", "reach forward", "push forward", "extend away from the body", "travel forward"],
    "backward": ["pull back", "move backward", "draw back toward the body", "retract toward the body",
                 "travel back"],
}
DIRECTION_WORDS = {"right": "to the right", "left": "to the left", "up": "up", "down": "down",
                   "forward": "forward", "backward": "back"}
MOVE_MULTI_VPS = ["move {dirs}", "travel {dirs}", "shift {dirs}", "go {dirs}"]
STILL_VPS = ["stay still", "remain still", "hold still", "stay in place", "keep still", "stay put",
             "remain in place", "stay motionless"]  # only for a hand that neither moves nor turns
TURN_VPS = ["rotate", "turn", "twist at the wrist", "turn at the wrist", "rotate at the wrist", "change its angle"]
STILL_WRIST_VPS = ["keep the wrist in place", "hold the wrist steady", "keep the wrist still"]
NO_FINGER_CHANGE = {  # "&&" joins verb phrases that are conjugated separately
    "extended": ["stay open", "keep its fingers straight", "remain open and relaxed", "stay relaxed and open"],
    "fully_bent": ["stay curled", "keep its fingers curled"],
    "partially_bent": ["stay loosely curled", "keep its fingers softly bent"],
}

# --- oscillation -------------------------------------------------------------------------------

OSC_VPS = {
    ("translation", "x"): ["move side to side", "sway from side to side", "wave back and forth sideways",
                           "shift left and right repeatedly", "swing side to side"],
    ("translation", "y"): ["bob up and down", "move up and down repeatedly", "bounce up and down",
                           "pump up and down"],
    ("translation", "z"): ["move back and forth", "push forward and back repeatedly", "rock forward and back"],
    ("rotation", "z"): ["rock side to side", "wave side to side", "swing side to side in a waving motion",
                        "tilt left and right repeatedly", "wave from side to side"],
    ("rotation", "y"): ["swivel left and right", "turn back and forth", "pivot from side to side",
                        "wave side to side, pivoting at the wrist"],
    ("rotation", "x"): ["tilt up and down", "flap up and down", "nod up and down at the wrist",
                        "flex up and down at the wrist"],
}
TIMES = {1: "once", 2: "twice", 3: "three times", 4: "four times", 5: "five times", 6: "six times",
         7: "seven times", 8: "eight times", 9: "nine times", 10: "ten times"}
SEVERAL_TIMES = ["several times", "repeatedly", "a number of times", "again and again"]
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
                9: "nine", 10: "ten"}

# --- two-hand interaction (full clauses: subject + verb) ----------------------------------------

PALM_CONTACT = ["the palms come together", "the palms meet", "the hands press together palm to palm",
                "the two palms touch", "the palms make contact", "the hands meet palm to palm",
                "the palms are brought together", "the palms of the two hands touch", "the hands join palm to palm",
                "the palms come into contact", "the two palms meet"]
PALM_CONTACT_REPEAT = ["the palms come together {times}", "the palms meet {times}",
                       "the hands meet palm to palm {times}", "the two palms touch {times}",
                       "the palms make contact {times}", "the hands come together palm to palm {times}",
                       "the palms are brought together {times}", "the palms press together {times}",
                       "the two palms meet {times}", "the palms of the two hands touch {times}",
                       "the hands join palm to palm {times}", "the palms come into contact {times}"]
PALM_SEPARATE = ["the palms separate", "the palms part", "the palms move apart", "the hands pull apart",
                 "the palms come apart"]
PALM_HOLD = ["the palms stay pressed together", "the palms remain in contact", "the palms keep touching"]
PALM_NEAR = ["the palms come close to each other", "the palms draw near each other", "the palms approach each other"]
PALM_AWAY = ["the palms draw apart", "the palms move away from each other", "the gap between the palms widens"]
PALM_ORIENT = {
    "facing": ["the palms face each other", "the palms are turned toward each other", "the palms point at each other"],
    "parallel": ["both palms face the same way", "the palms point in the same direction", "the palms are parallel"],
    "perpendicular": ["the palms are at right angles to each other", "the palms are perpendicular to each other"],
    "back_to_back": ["the backs of the hands face each other", "the palms face away from each other"],
    "opposite": ["the palms face opposite ways", "the palms point in opposite directions"],
    "angled": ["the palms are angled to each other", "the palms sit at an angle to each other"],
}
PALM_TURN = ["the hands rotate until {state}", "the hands turn so that {state}", "the wrists turn until {state}",
             "the hands twist until {state}"]
TIPS_MEET = ["{pairs} touch", "{pairs} meet", "{pairs} come into contact", "{pairs} press together"]
TIPS_PART = ["{pairs} separate", "{pairs} part", "{pairs} move apart", "{pairs} lose contact"]
TIPS_HOLD = ["{pairs} stay touching", "{pairs} remain pressed together", "{pairs} keep in contact"]
MATCHING_TIPS = ["the matching fingertips of both hands", "the fingertips of the two hands",
                 "the corresponding fingertips of both hands"]
# {tips} is singular or plural: the verb right after it is conjugated to agree
TIP_PALM_TOUCH = ["{tips} touch {palm}", "{tips} press against {palm}", "{tips} make contact with {palm}",
                  "{tips} come down on {palm}"]
TIP_PALM_NEAR = ["{tips} come close to {palm}", "{tips} approach {palm}", "{tips} hover near {palm}"]
TIP_PALM_LEAVE = ["{tips} lift off {palm}", "{tips} leave {palm}", "{tips} move away from {palm}"]
TIP_PALM_HOLD = ["{tips} stay on {palm}", "{tips} rest against {palm}", "{tips} keep touching {palm}"]
HANDS_TOUCH = ["the hands touch", "the hands come into contact", "the two hands meet", "the hands make contact"]
HANDS_CLOSE = ["the hands come close together", "the hands draw near each other", "the hands approach each other"]
HANDS_APART = ["the hands move apart", "the hands separate", "the hands draw away from each other"]
HANDS_HOLD = ["the hands stay in contact", "the hands keep touching", "the hands remain touching"]
RELATIVE = {  # keyed by (axis, from, to); pairs not listed are not said
    ("y", "level", "above"): ["the right hand rises above the left", "the right hand ends up higher than the left"],
    ("y", "below", "above"): ["the right hand ends up above the left", "the hands swap heights, right over left"],
    ("y", "level", "below"): ["the left hand rises above the right", "the right hand drops below the left"],
    ("y", "above", "below"): ["the left hand ends up above the right", "the hands swap heights, left over right"],
    ("y", "above", "level"): ["the hands come level with each other", "the two hands reach the same height"],
    ("y", "below", "level"): ["the hands come level with each other", "the two hands reach the same height"],
    ("x", "level", "crossed"): ["the hands cross over each other", "the right hand crosses to the left of the left hand"],
    ("x", "apart", "crossed"): ["the hands cross over each other", "the right hand crosses to the left of the left hand"],
    ("x", "crossed", "level"): ["the hands uncross"],
    ("x", "crossed", "apart"): ["the hands uncross", "the hands return to their own sides"],
    ("z", "level", "ahead"): ["the right hand moves ahead of the left", "the right hand comes in front of the left"],
    ("z", "level", "behind"): ["the left hand moves ahead of the right", "the right hand drops behind the left"],
    ("z", "behind", "ahead"): ["the right hand moves from behind the left to in front of it"],
    ("z", "ahead", "behind"): ["the left hand moves from behind the right to in front of it"],
}
RELATIVE_HOLD = {
    ("y", "above"): ["the right hand stays above the left"],
    ("y", "below"): ["the left hand stays above the right"],
    ("x", "crossed"): ["the hands stay crossed"],
    ("z", "ahead"): ["the right hand stays in front of the left"],
    ("z", "behind"): ["the left hand stays in front of the right"],
}
INTERACTION_NONE = ["The hands do not touch.", "The two hands never make contact.", "The hands stay apart.",
                    "There is no contact between the hands."]

# --- both-hand summaries ------------------------------------------------------------------------

TOGETHER = ["together", "at the same time", "in unison", "simultaneously"]
IN_TURN = ["one after the other", "in turn", "one at a time"]
BOTH_STILL = ["Both hands stay still.", "Neither hand moves.", "The two hands remain still.",
              "Both hands hold still throughout."]

# --- action labels (CLUTCH-style high-level annotations) -----------------------------------------
# "person": verb phrases for a person subject ({the_hand} = "their left hand" / "one hand");
# "hand": verb phrases for a hand subject (two-hand actions use {other}). "hands": "one"/"two".

ACTION_PHRASES: dict[str, dict] = {
    "fist": {"hands": "one", "person": ["make a fist with {the_hand}", "clench {the_hand} into a fist",
                                         "ball {the_hand} into a fist", "close {the_hand} into a fist"],
             "hand": ["make a fist", "clench into a fist", "close into a fist"]},
    "open_hand": {"hands": "one", "person": ["open {the_hand} flat", "hold {the_hand} open and flat",
                                              "show an open, flat hand with {the_hand}"],
                  "hand": ["open flat", "open up fully", "show a flat, open hand"]},
    "spread_fingers": {"hands": "one", "person": ["spread the fingers of {the_hand} wide",
                                                   "splay the fingers of {the_hand}"],
                       "hand": ["spread its fingers wide", "splay its fingers apart"]},
    "point": {"hands": "one", "person": ["point with {the_hand}", "point the index finger of {the_hand}",
                                          "make a pointing gesture with {the_hand}"],
              "hand": ["point with the index finger", "make a pointing gesture"]},
    "thumbs_up": {"hands": "one", "person": ["give a thumbs up with {the_hand}", "show a thumbs-up with {the_hand}"],
                  "hand": ["give a thumbs up", "make a thumbs-up sign"]},
    "peace_sign": {"hands": "one", "person": ["make a peace sign with {the_hand}", "show a V sign with {the_hand}"],
                   "hand": ["make a peace sign", "form a V with two fingers"]},
    "pinch": {"hands": "one", "person": ["pinch the thumb and {finger} finger of {the_hand} together",
                                          "make a pinch with {the_hand}, thumb to {finger} finger"],
              "hand": ["pinch the thumb against the {finger} finger", "bring the thumb and {finger} fingertip together"]},
    "ok_sign": {"hands": "one", "person": ["make an OK sign with {the_hand}", "form an OK ring with {the_hand}"],
                "hand": ["make an OK sign", "form a ring with the thumb and index finger"]},
    "count": {"hands": "one", "person": ["count to {n} on {the_hand}", "count {n} fingers on {the_hand}",
                                          "hold up {n} fingers of {the_hand} one by one"],
              "hand": ["count to {n} on its fingers", "raise {n} fingers one by one"]},
    "thumb_touch": {"hands": "one", "person": ["touch the thumb of {the_hand} to each fingertip in turn"],
                    "hand": ["touch the thumb to each fingertip in turn", "tap the thumb against each fingertip"]},
    "flick": {"hands": "one", "person": ["flick a finger of {the_hand}", "make a flicking motion with {the_hand}"],
              "hand": ["flick a finger", "flick a finger out from under the thumb"]},
    "writing": {"hands": "one", "person": ["write with an imaginary pen in {the_hand}",
                                            "mime writing with {the_hand}"],
                "hand": ["mime writing with an imaginary pen", "write with an imaginary pen"]},
    "finger_tap": {"hands": "one", "person": ["tap the fingers of {the_hand}", "tap a finger of {the_hand} repeatedly"],
                   "hand": ["tap a finger repeatedly", "tap its fingers"]},
    "piano": {"hands": "one", "person": ["play an imaginary piano with {the_hand}", "mime playing piano with {the_hand}"],
              "hand": ["play imaginary piano keys", "press imaginary piano keys"]},
    "drumming": {"hands": "one", "person": ["drum the fingers of {the_hand}", "drum with the fingers of {the_hand}"],
                 "hand": ["drum its fingers", "drum the fingers one after another"]},
    "scratch": {"hands": "one", "person": ["scratch with the fingertips of {the_hand}"],
                "hand": ["scratch with its fingertips", "make a scratching motion"]},
    "finger_wiggle": {"hands": "one", "person": ["wiggle the fingers of {the_hand}"],
                      "hand": ["wiggle its fingers", "waggle its fingers"]},
    "beckon": {"hands": "one", "person": ["beckon with {the_hand}", "make a come-here gesture with {the_hand}"],
               "hand": ["beckon", "make a come-here gesture"]},
    "wrist_flex": {"hands": "one", "person": ["flex the wrist of {the_hand} up and down"],
                   "hand": ["flex at the wrist", "bend up and down at the wrist"]},
    "wrist_rotate": {"hands": "one", "person": ["rotate {the_hand} at the wrist", "turn {the_hand} over and back"],
                     "hand": ["rotate at the wrist", "turn over and back"]},
    "wrist_circle": {"hands": "one", "person": ["circle {the_hand} around the wrist"],
                     "hand": ["circle around the wrist", "make circles at the wrist"]},
    "wave": {"hands": "one", "person": ["wave with {the_hand}", "wave {the_hand}", "wave hello with {the_hand}"],
             "hand": ["wave", "wave hello", "wave in greeting"]},
    "stop_sign": {"hands": "one", "person": ["hold up {the_hand} in a stop sign", "show a stop gesture with {the_hand}"],
                  "hand": ["make a stop sign", "hold up its palm to signal stop"]},
    "shake_out": {"hands": "one", "person": ["shake out {the_hand}", "shake {the_hand} loosely"],
                  "hand": ["shake out loosely", "shake loosely"]},
    "pat": {"hands": "one", "person": ["pat down with {the_hand}", "make a patting motion with {the_hand}"],
            "hand": ["pat down", "make a patting motion"]},
    "swipe": {"hands": "one", "person": ["swipe {the_hand} sideways", "make a swiping gesture with {the_hand}"],
              "hand": ["swipe sideways", "make a swiping gesture"]},
    "grasp": {"hands": "one", "person": ["grasp an imaginary {size}object with {the_hand}",
                                          "reach out and grab an imaginary {size}object with {the_hand}"],
              "hand": ["grasp an imaginary {size}object", "grab an imaginary {size}object"]},
    "clap": {"hands": "two", "person": ["clap", "clap their hands", "clap the hands together", "give a clap"],
             "hand": ["clap against {other}", "meet {other} in a clap"]},
    "rub_palms": {"hands": "two", "person": ["rub their palms together", "rub the hands together"],
                  "hand": ["rub against the palm of {other}", "slide against the palm of {other}"]},
    "steeple": {"hands": "two", "person": ["steeple their fingers", "press the fingertips of both hands together",
                                            "form a steeple with the fingers"],
                "hand": ["press its fingertips against those of {other}", "form a steeple with {other}"]},
    "touch_index_tips": {"hands": "two", "person": ["touch the two index fingertips together",
                                                     "bring both index fingertips together"],
                         "hand": ["touch its index fingertip to that of {other}"]},
    "tap_palm": {"hands": "two", "person": ["tap one palm with the fingers of the other hand"],
                 "hand": ["tap the palm of {other} with its fingertips", "tap against the palm of {other}"]},
    "interlace_fingers": {"hands": "two", "person": ["interlace their fingers", "lace the fingers of both hands together",
                                                      "intertwine their fingers"],
                          "hand": ["interlace its fingers with those of {other}"]},
    "hold_ball": {"hands": "two", "person": ["hold an imaginary ball between their palms",
                                              "cradle an imaginary ball between both hands"],
                  "hand": ["hold one side of an imaginary ball"]},
    "hand_over_hand": {"hands": "two", "person": ["roll the hands over each other", "circle the hands over one another"],
                       "hand": ["roll over {other}"]},
    "typing": {"hands": "two", "person": ["type on an imaginary keyboard", "mime typing with both hands"],
               "hand": ["type on an imaginary keyboard"]},
    "pass_object": {"hands": "two", "person": ["pass an imaginary object from one hand to the other",
                                                "hand an imaginary object across to the other hand"],
                    "hand": ["pass an imaginary object to {other}"]},
    "mirror": {"hands": "two", "person": ["do the same motion with both hands in mirror image",
                                           "mirror one hand's motion with the other"],
               "hand": ["mirror {other}"]},
    "alternate": {"hands": "two", "person": ["repeat the same motion with each hand in turn",
                                              "alternate the same motion between the hands"],
                  "hand": ["take turns with {other}"]},
    "rest": {"hands": "one", "person": ["rest {the_hand}", "keep {the_hand} relaxed"],
             "hand": ["rest", "stay relaxed"]},
}
# alias -> canonical label (and, for parametrised names, the parameter they carry)
ACTION_ALIASES = {
    "drum": "drumming", "interlace": "interlace_fingers", "rub": "rub_palms", "open": "open_hand",
    "spread": "spread_fingers", "thumbsup": "thumbs_up", "ok": "ok_sign", "peace": "peace_sign",
    "tap": "finger_tap", "type": "typing", "pass": "pass_object", "steeple_fingers": "steeple",
    "wave_hello": "wave", "clap_hands": "clap", "pointing": "point", "relax": "rest",
}
