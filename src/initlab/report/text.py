"""The words of the pages and figures, in English and in Hebrew (the chapter's own language), and
how a right-to-left language's text is put in the order a left-to-right drawing needs.

``TEXT[lang][key]`` is an HTML template whose ``{placeholders}`` :mod:`initlab.report` fills with
numbers and figures that are already escaped and marked left-to-right. In a right-to-left language
every fragment of code, formula or number in a template is isolated left to right
(``<code dir="ltr">``, ``<span dir="ltr">``), so that its neutral characters (``_``, ``()``, ``=``)
stay where the source has them. ``TEXT[lang]["figures"]`` are the words of the figures; where
matplotlib draws glyphs left to right as given (before 3.11), :func:`visual_order` reorders a
right-to-left language's first (see :func:`initlab.plots.rtl_text`).
"""

import unicodedata

#: Languages written right to left: their pages get ``dir="rtl"``, their figures' text is reordered.
RTL = frozenset({"he"})

_MIRROR = dict(zip("()[]{}<>«»", ")(][}{><»«"))
_SIGNS = "-+\u00b1\u2212$"  # a sign written before a number belongs to it


def figure_file(name: str, lang: str = "en") -> str:
    """The file name (without suffix) of figure ``name`` drawn in ``lang``: ``contours`` in English,
    ``contours-he`` in Hebrew, side by side in one output folder."""
    return name if lang == "en" else f"{name}-{lang}"


def _rtl(c: str) -> bool:
    return unicodedata.bidirectional(c) in ("R", "AL")


def _strong_ltr(c: str) -> bool:
    return unicodedata.bidirectional(c) in ("L", "EN", "AN")


def _island(seg: str, at_start: bool) -> tuple[int, int] | None:
    """Where the left-to-right fragment of a stretch without right-to-left letters begins and ends:
    from its first to its last letter or digit, with a bracket whose partner is inside, a % after a
    number and a sign before one (not a hyphen after a word: "ל-90%" is "to 90%"). ``at_start``: the
    stretch begins the line. None when the stretch is only spaces and punctuation."""
    strong = [i for i, c in enumerate(seg) if _strong_ltr(c)]
    if not strong:
        return None
    a, b = strong[0], strong[-1] + 1
    while True:
        part = seg[a:b]
        if b < len(seg) and (seg[b] == ")" and part.count("(") > part.count(")")
                             or seg[b] == "%" and seg[b - 1].isdigit()):
            b += 1
        elif a > 0 and (seg[a - 1] == "(" and part.count(")") > part.count("(")
                        or seg[a - 1] in _SIGNS and seg[a].isdigit()
                        and (seg[a - 2] in " ([" if a >= 2 else at_start)):
            a -= 1
        else:
            return a, b


def visual_order(text: str) -> str:
    """``text`` of a right-to-left language in the order to draw it glyph after glyph left to right
    (what matplotlib before 3.11 does): each line's units reversed, where a unit is a letter, a space
    or a punctuation mark (brackets mirrored), or a whole left-to-right fragment (code, a formula, a
    number), which keeps its own order. Hebrew needs no shaping, only this. Text without right-to-left
    letters is returned as it is.

    >>> visual_order("normal(std=3) (\u05d1\u05e6\u05e2\u05d3 4)") == "(4 \u05d3\u05e2\u05e6\u05d1) normal(std=3)"
    True
    """
    if not any(_rtl(c) for c in text):
        return text
    lines = []
    for line in text.split("\n"):
        units, i = [], 0
        while i < len(line):
            if _rtl(line[i]):
                units.append(line[i])
                i += 1
                continue
            j = i
            while j < len(line) and not _rtl(line[j]):
                j += 1
            seg, span = line[i:j], _island(line[i:j], i == 0)
            a, b = span or (len(seg), len(seg))
            units += [_MIRROR.get(c, c) for c in seg[:a]] + ([seg[a:b]] if span else []) + \
                [_MIRROR.get(c, c) for c in seg[b:]]
            i = j
        lines.append("".join(reversed(units)))
    return "\n".join(lines)


TEXT = {
    "en": {
        "title": "initlab demo: parameter initialization",
        "verdict": """<b>Verdict.</b> On the same data and seed, the {net} {act} network trained from
<b>PyTorch's default</b> ({default_acc} test accuracy), from <b>Xavier</b> ({xavier_acc}) and from
<b>He</b> ({he_acc}). From a <b>constant</b> it behaved like a single neuron ({const_acc}; a straight
line, logistic regression, gets {baseline}). With weights too <b>small</b> the loss did not move
({small_loss}, chance is {log2}); with weights too <b>large</b> it {large_txt}.""",
        "large_diverged": "diverged: the loss or a parameter became NaN or infinite at step {step}",
        "large_finished": "ended with loss {loss}",
        "s1_title": "1. Why the starting point matters",
        "s1": """Every network below is the same: {net}, {act} activations, trained with {opt}
(learning rate {lr}) for {steps} steps on {n} points of <code>make_moons</code> (noise {noise}), the
same data and the same seed. Only the initial parameters differ, and so does everything that follows.""",
        "s1_caption": """Each panel shows the trained network's probability that a point is black: contour
lines at 0.1, 0.2, ..., 0.9, each labelled; the thick one at 0.5 is the decision boundary.""",
        "s2_title": "2. Symmetry",
        "s2": """With every weight and bias equal to {const_value}, all neurons of a layer compute the
same function, receive the same gradient and take the same step, so they stay equal for ever. After
training, initlab counts the distinct neurons per hidden layer (the <i>effective width</i>):
<b>{const_width}</b> out of {widths}. The deep, wide network is one neuron per layer, and its boundary
is a straight line: test accuracy {const_acc}, against {baseline} for logistic regression.""",
        "s2_precision": """Exact symmetry is a property of exact arithmetic. In float32 the CPU's matrix
kernels may round some output columns differently; plain SGD keeps such differences at the level of
rounding, but Adam divides each gradient by its own running scale and can amplify them until the
symmetry breaks. The figure trains a small {sym_net} tanh network from a constant with both optimizers
in float32 and float64. Effective widths at the end: {sym_widths}.""",
        "s3_title": "3. Requirement 1: break the symmetry",
        "s3": """Random initialization gives every neuron its own starting point. From PyTorch's default
the same network keeps {default_width} distinct neurons and draws a curved boundary (test accuracy
{default_acc}).""",
        "s4_title": "4. Scale: vanishing and exploding",
        "s4": """Random is not enough. With <code>normal(std=0.01)</code> every layer shrinks the signal,
the output is almost the same for every point ({small_signal}), and the gradients reaching the first
layers are tiny: the loss stays at {small_loss} (it starts at log 2 = {log2}), the vanishing gradient. With
<code>normal(std=3)</code> every layer multiplies the signal: the outputs and the gradients are huge,
and training {large_txt}, the exploding gradient.""",
        "s4_inside": """Inside the network, layer by layer (rows) and step by step (columns): with the small
std each layer's output is smaller than the one before and nothing changes over the steps (flat); with
the large std every layer multiplies the output and the gradients by a large factor, until the numbers
overflow.""",
        "s5_title": "5. Rules that keep the scale",
        "s5": """Xavier (Glorot and Bengio 2010) sets {xavier_var}, a compromise between keeping the
forward values ({fwd_var}) and the backward gradients ({bwd_var}) at the same order of magnitude from
layer to layer. He et al. (2015) use {he_var} for ReLU, whose zeros halve the variance at every layer.
Both trained here: {xavier_acc} and {he_acc}.""",
        "s6_title": "6. PyTorch's default",
        "s6": """<code>nn.Linear.reset_parameters()</code> draws weights and biases from {default_rule}.
For the hidden layers of width {hidden0} that is a bound of {bound}.""",
        "s7_title": "7. The exercise: Xavier against the default",
        "s7": """Xavier's bound is {xavier_bound}, drawn with <code>torch.nn.init.uniform_</code>.
Default: test accuracy {default_acc}, 90% reached at step {default_90}. Xavier: {xavier_acc}, 90% at
step {xavier_90}. The full comparison:""",
        "reproduce": "Reproduce",
        "versions": "initlab {initlab}, torch {torch}, Python {python}.",
        "columns": ["scheme", "train accuracy", "test accuracy", "final loss",
                    "step test accuracy first reached 90%", "effective width per hidden layer", "diverged"],
        "of": "of", "never": "never", "no": "no", "at_step": "at step {step}", "na_diverged": "n/a (diverged)",
        "accuracy": {"diverged": "n/a (diverged at step {step})", "flat": "{acc} (flat output: no signal)",
                     "missing": "n/a"},
        "signal": {"none": "no signal", "weak": "a weak signal", "clear": "a signal"},
        "signal_data": "{p} over the data: {verdict}", "signal_grid": "{p} everywhere: {verdict}",
        "train_verdict": "<b>{scheme}</b> on {dataset}: {status}; effective width {width} of {widths}.",
        "train_diverged": '<span class="bad">diverged at step {step}: no accuracy</span>',
        "train_accuracy": "test accuracy <b>{acc}</b>",
        "alt": {"contours": "probability contours, one panel per scheme",
                "contours_one": "probability contours",
                "symmetry": "largest difference between neurons over the steps",
                "curves": "loss and test accuracy over the steps",
                "scale": "per-layer output std and gradient norm over the steps"},
        "figures": {
            "contours_title": "Probability that a point is black (contour lines labelled with the probability)",
            "white": "white (0)", "black": "black (1)",
            "no_probabilities": "diverged: no probabilities to draw",
            "test_accuracy": "test accuracy {acc}",
            "diverged_at": "diverged at step {step}", "named_diverged": "{name} (diverged at step {step})",
            "step": "step", "layer": "layer",
            "loss_title": "Loss", "loss_label": "training loss (log scale)",
            "acc_title": "Test accuracy", "acc_label": "test accuracy",
            "act_std": "std of layer output", "grad_norm": "weight-gradient norm", "log": "{label} (log)",
            "sym_title": "Does a constant initialization stay symmetric?",
            "sym_label": "largest difference between neurons",
            "sym_floor": "exactly equal (difference 0)",
            "sym_width": "{name}: effective width {widths} at the end",
            "sym_zero": "{name} (every difference exactly 0)",
            "sym_empty": "Every difference is exactly 0:\nthe neurons stayed identical at every step.",
            "empty_log": "Nothing to draw on a log scale:\nevery value is 0 or missing.",
            "empty_loss": "Nothing to draw on a log scale:\nno finite loss was recorded.",
        },
    },
    "he": {
        "title": "initlab: אתחול פרמטרים",
        "verdict": """<b>השורה התחתונה.</b> על אותם נתונים ועם אותו זרע אקראי, הרשת {net} עם אקטיבציות
{act} אומנה מאתחול <b>ברירת המחדל של PyTorch</b> (דיוק {default_acc} על קבוצת המבחן), מאתחול
<b>Xavier</b> ({xavier_acc}) ומאתחול <b>He</b> ({he_acc}). מאתחול <b>קבוע</b> היא התנהגה כמו נוירון
יחיד ({const_acc}; קו ישר, רגרסיה לוגיסטית, מגיע ל-{baseline}). עם משקלים <b>קטנים</b> מדי ההפסד לא
זז ({small_loss}, ההפסד של ניחוש הוא {log2}); עם משקלים <b>גדולים</b> מדי האימון {large_txt}.""",
        "large_diverged": "התבדר: ההפסד או פרמטר הפכו ל-NaN או לאינסוף בצעד {step}",
        "large_finished": "הסתיים בהפסד {loss}",
        "s1_title": "1. למה נקודת ההתחלה חשובה",
        "s1": """כל הרשתות שלהלן זהות: {net}, אקטיבציות {act}, אימון ב-{opt} (קצב למידה {lr}) במשך
{steps} צעדים על {n} נקודות של <code dir="ltr">make_moons</code> (רעש {noise}), אותם נתונים ואותו זרע.
רק הפרמטרים ההתחלתיים שונים, וכך גם כל מה שבא אחריהם.""",
        "s1_caption": """כל לוח מציג את ההסתברות שהרשת המאומנת נותנת לכך שנקודה שחורה: קווי גובה
ב-<span dir="ltr">0.1, 0.2, ..., 0.9</span>, כל קו מסומן בהסתברות שלו; הקו העבה ב-<span dir="ltr">0.5</span>
הוא גבול ההחלטה.""",
        "s2_title": "2. סימטריה",
        "s2": """כשכל משקל וכל היסט שווים ל-{const_value}, כל הנוירונים בשכבה מחשבים את אותה פונקציה,
מקבלים את אותו גרדיאנט ומתעדכנים באותו צעד, ולכן הם נשארים זהים לתמיד. אחרי האימון initlab סופרת את
הנוירונים השונים בכל שכבה נסתרת (<i>הרוחב האפקטיבי</i>): <b>{const_width}</b> מתוך {widths}. הרשת
העמוקה והרחבה היא נוירון אחד בכל שכבה, וגבול ההחלטה שלה הוא קו ישר: דיוק {const_acc}, לעומת {baseline}
של רגרסיה לוגיסטית.""",
        "s2_precision": """סימטריה מדויקת היא תכונה של חשבון מדויק. ב-<span dir="ltr">float32</span> ליבות
הכפל של המעבד עשויות לעגל עמודות שונות בצורה שונה; SGD רגיל משאיר את ההבדלים ברמת שגיאת העיגול, אבל
Adam מחלק כל גרדיאנט בסקאלה הרצה שלו ויכול להגדיל אותם עד שהסימטריה נשברת. האיור מאמן רשת tanh קטנה
{sym_net} מאתחול קבוע בשני האופטימייזרים, ב-<span dir="ltr">float32</span>
וב-<span dir="ltr">float64</span>. הרוחב האפקטיבי בסוף: {sym_widths}.""",
        "s3_title": "3. דרישה 1: שבירת הסימטריה",
        "s3": """אתחול אקראי נותן לכל נוירון נקודת התחלה משלו. מאתחול ברירת המחדל של PyTorch אותה רשת
שומרת על {default_width} נוירונים שונים ומשרטטת גבול מעוקל (דיוק {default_acc}).""",
        "s4_title": "4. סקאלה: גרדיאנט נעלם וגרדיאנט מתפוצץ",
        "s4": """אקראיות לבדה אינה מספיקה. עם <code dir="ltr">normal(std=0.01)</code> כל שכבה מקטינה את
האות, הפלט כמעט זהה לכל נקודה ({small_signal}), והגרדיאנטים שמגיעים לשכבות הראשונות זעירים: ההפסד נשאר
{small_loss} (הוא מתחיל ב-<span dir="ltr">log 2 = {log2}</span>), הגרדיאנט הנעלם. עם
<code dir="ltr">normal(std=3)</code> כל שכבה מגדילה את האות: הפלטים והגרדיאנטים עצומים, והאימון {large_txt},
הגרדיאנט המתפוצץ.""",
        "s4_inside": """בתוך הרשת, שכבה אחר שכבה (שורות) וצעד אחר צעד (עמודות): עם סטיית התקן הקטנה הפלט
של כל שכבה קטן מזה של הקודמת ודבר אינו משתנה לאורך הצעדים (שטוח); עם סטיית התקן הגדולה כל שכבה מכפילה
את הפלט ואת הגרדיאנטים בפקטור גדול, עד שהמספרים גולשים.""",
        "s5_title": "5. כללים ששומרים על הסקאלה",
        "s5": """Xavier (<span dir="ltr">Glorot &amp; Bengio, 2010</span>) קובע {xavier_var}, פשרה בין שמירה
על ערכי המעבר קדימה ({fwd_var}) לבין שמירה על הגרדיאנטים במעבר אחורה ({bwd_var}) באותו סדר גודל משכבה
לשכבה. He ושותפיו (<span dir="ltr">2015</span>) משתמשים ב-{he_var} עבור ReLU, שהאפסים שלה מחצים את
השונות בכל שכבה. שניהם אימנו כאן: {xavier_acc} ו-{he_acc}.""",
        "s6_title": "6. ברירת המחדל של PyTorch",
        "s6": """<code dir="ltr">nn.Linear.reset_parameters()</code> מגריל משקלים והיסטים מ-{default_rule}.
לשכבות הנסתרות ברוחב {hidden0} זה חסם של {bound}.""",
        "s7_title": "7. התרגיל: Xavier מול ברירת המחדל",
        "s7": """החסם של Xavier הוא {xavier_bound}, בהגרלה עם <code dir="ltr">torch.nn.init.uniform_</code>.
ברירת מחדל: דיוק {default_acc}, <span dir="ltr">90%</span> הושג בצעד {default_90}. Xavier: {xavier_acc},
<span dir="ltr">90%</span> בצעד {xavier_90}. ההשוואה המלאה:""",
        "reproduce": "לשחזור",
        "versions": 'גרסאות: <span dir="ltr">initlab {initlab}, torch {torch}, Python {python}</span>.',
        "columns": ["שיטה", "דיוק אימון", "דיוק מבחן", "הפסד סופי", "הצעד שבו דיוק המבחן הגיע ל-90%",
                    "רוחב אפקטיבי לכל שכבה נסתרת", "התבדר"],
        "of": "מתוך", "never": "אף פעם", "no": "לא", "at_step": "בצעד {step}", "na_diverged": "אין (התבדר)",
        "accuracy": {"diverged": "אין (התבדר בצעד {step})", "flat": "{acc} (פלט שטוח: אין אות)", "missing": "אין"},
        "signal": {"none": "אין אות", "weak": "אות חלש", "clear": "יש אות"},
        "signal_data": "{p} על הנתונים: {verdict}", "signal_grid": "{p} בכל מקום: {verdict}",
        "train_verdict": "<b>{scheme}</b> על {dataset}: {status}; רוחב אפקטיבי {width} מתוך {widths}.",
        "train_diverged": '<span class="bad">התבדר בצעד {step}: אין דיוק</span>',
        "train_accuracy": "דיוק מבחן <b>{acc}</b>",
        "alt": {"contours": "קווי גובה של ההסתברות, לוח לכל שיטה",
                "contours_one": "קווי גובה של ההסתברות",
                "symmetry": "ההפרש הגדול ביותר בין נוירונים לאורך הצעדים",
                "curves": "ההפסד ודיוק המבחן לאורך הצעדים",
                "scale": "סטיית התקן של פלט כל שכבה ונורמת הגרדיאנט לאורך הצעדים"},
        "figures": {
            "contours_title": "ההסתברות שנקודה שחורה (כל קו גובה מסומן בהסתברות שלו)",
            "white": "לבנה (0)", "black": "שחורה (1)",
            "no_probabilities": "התבדר: אין הסתברויות לשרטט",
            "test_accuracy": "דיוק מבחן {acc}",
            "diverged_at": "התבדר בצעד {step}", "named_diverged": "{name} (התבדר בצעד {step})",
            "step": "צעד", "layer": "שכבה",
            "loss_title": "הפסד", "loss_label": "הפסד האימון (סקאלה לוגריתמית)",
            "acc_title": "דיוק מבחן", "acc_label": "דיוק מבחן",
            "act_std": "סטיית התקן של פלט השכבה", "grad_norm": "נורמת הגרדיאנט של המשקלים",
            "log": "{label} (לוגריתמי)",
            "sym_title": "האם אתחול קבוע נשאר סימטרי?",
            "sym_label": "ההפרש הגדול ביותר בין נוירונים",
            "sym_floor": "שווים בדיוק (הפרש 0)",
            "sym_width": "{name}: רוחב אפקטיבי {widths} בסוף",
            "sym_zero": "{name} (כל ההפרשים 0 בדיוק)",
            "sym_empty": "כל ההפרשים הם 0 בדיוק:\nהנוירונים נשארו זהים בכל צעד.",
            "empty_log": "אין מה לשרטט בסקאלה לוגריתמית:\nכל הערכים 0 או חסרים.",
            "empty_loss": "אין מה לשרטט בסקאלה לוגריתמית:\nכל ערכי ההפסד חסרים או אינסופיים.",
        },
    },
}
